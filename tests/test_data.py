"""Datasets: the real CIFAR-10 reader on generated files, digits, ImageFolder, batch augmentation."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.datasets import CIFAR10

from hplandscape.errors import UserError
from hplandscape.study.config import DataConfig
from hplandscape.training.data import (CIFAR_FOLDER, _cifar_reader, dataset_info, load_data, random_crop,
                                       write_fake_cifar10)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_fake_cifar10(root, n_train=250, n_test=60, seed=3)
    return root


def _cifar(root, **kw):
    return DataConfig(name="cifar10", root=str(root), num_workers=0, **kw)


# -- CIFAR-10 ---------------------------------------------------------------------------------


def test_generated_cifar_has_the_real_on_disk_layout(cifar_root):
    folder = cifar_root / CIFAR_FOLDER
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                     "data_batch_5", "test_batch"]
    with open(folder / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="latin1")  # how torchvision reads them
    assert entry["data"].dtype == np.uint8 and entry["data"].shape == (50, 3072)
    assert len(entry["labels"]) == 50


def test_real_torchvision_reader_loads_generated_files(cifar_root):
    reader = _cifar_reader()
    assert issubclass(reader, CIFAR10)  # torchvision's own reading code, checksums relaxed
    ds = reader(str(cifar_root), train=True)
    assert ds.data.shape == (250, 32, 32, 3) and ds.classes[0] == "airplane"

    data = load_data(_cifar(cifar_root))
    assert data.info == dataset_info(_cifar(cifar_root)) == ("cifar10", 10, 3, 32)
    assert (data.num_train, data.num_test) == (250, 60)
    # the in-memory tensors hold exactly the pixels torchvision decoded (HWC -> CHW)
    assert torch.equal(data.train_x, torch.from_numpy(ds.data).permute(0, 3, 1, 2))
    assert data.train_y.tolist() == ds.targets


def test_normalisation_uses_training_split_statistics(cifar_root):
    data = load_data(_cifar(cifar_root))
    x = torch.cat([xb for xb, _ in data.eval_batches(1000)])
    assert x.dtype == torch.float32 and x.shape == (60, 3, 32, 32)
    # The training images, normalised, have per-channel mean 0 and std 1.
    train = data._normalise(data.train_x)
    assert torch.allclose(train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(train.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)


def test_missing_cifar_directory_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match=f"{missing} does not exist"):
        load_data(_cifar(missing))
    with pytest.raises(UserError, match=f"{missing} does not exist"):  # the planner learns it too
        dataset_info(_cifar(missing))


def test_cifar_errors_name_the_setting_that_downloads_not_a_flag_that_does_not_exist(tmp_path):
    # The download is the config's data.download (an override on the command line), not a flag.
    folder = write_fake_cifar10(tmp_path / "partial", 20, 10)
    (folder / "test_batch").unlink()
    for cfg in (_cifar(tmp_path / "nowhere"), _cifar(tmp_path / "partial"), DataConfig(name="cifar10")):
        with pytest.raises(UserError) as e:
            load_data(cfg)
        assert "data.download=true" in str(e.value) and "--download" not in str(e.value)


def test_incomplete_cifar_directory_lists_missing_files(tmp_path):
    folder = write_fake_cifar10(tmp_path, 20, 10)
    (folder / "data_batch_3").unlink()
    with pytest.raises(UserError, match="missing data_batch_3"):
        load_data(_cifar(tmp_path))


def test_corrupt_cifar_file_is_a_clear_error(tmp_path):
    folder = write_fake_cifar10(tmp_path, 20, 10)
    (folder / "test_batch").write_bytes(b"this is not a pickle")
    with pytest.raises(UserError, match="cannot read the test batches"):
        load_data(_cifar(tmp_path))


def test_cifar_labels_out_of_range_are_a_classes_mismatch(tmp_path):
    folder = write_fake_cifar10(tmp_path, 20, 10)
    with open(folder / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    entry["labels"][0] = 57  # a CIFAR-100 label
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump(entry, f)
    with pytest.raises(UserError, match=r"labels must lie in 0\.\.9.*found 0\.\.57"):
        load_data(_cifar(tmp_path))


def test_cifar_meta_with_wrong_class_count_is_rejected(tmp_path):
    folder = write_fake_cifar10(tmp_path, 20, 10)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["a", "b", "c"]}, f)
    with pytest.raises(UserError, match="batches.meta: lists 3 classes, CIFAR-10 has 10"):
        load_data(_cifar(tmp_path))


def test_subsets_are_fixed_and_sized(cifar_root):
    a = load_data(_cifar(cifar_root, train_subset=100, test_subset=30))
    b = load_data(_cifar(cifar_root, train_subset=100, test_subset=30))
    assert (a.num_train, a.num_test) == (100, 30)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)


# -- digits -----------------------------------------------------------------------------------


def test_digits_fixed_stratified_split():
    a, b = load_data(DataConfig(name="digits")), load_data(DataConfig(name="digits"))
    assert (a.num_train, a.num_test) == (1347, 450)
    assert a.info == ("digits", 10, 1, 8)
    assert a.train_x.dtype == torch.uint8 and int(a.train_x.max()) == 255
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.train_y, b.train_y)
    # stratified: every class has 25 % ± 1 image of its examples in the test split
    for c in range(10):
        n_test, n_train = int((a.test_y == c).sum()), int((a.train_y == c).sum())
        assert abs(n_test - 0.25 * (n_test + n_train)) <= 1


def test_digits_are_scikit_learns_images_and_split_read_without_importing_it():
    """The stored split is scikit-learn's stratified split (test_size 0.25, random_state 0) of
    ``load_digits()``, image for image and in its order; a worker reads both without importing
    scikit-learn (a second's start-up)."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    tr_x, te_x, tr_y, te_y = train_test_split(images, bunch.target, test_size=0.25, stratify=bunch.target,
                                              random_state=0)
    data = load_data(DataConfig(name="digits"))
    assert np.array_equal(data.train_x.numpy(), tr_x) and np.array_equal(data.test_x.numpy(), te_x)
    assert np.array_equal(data.train_y.numpy(), tr_y) and np.array_equal(data.test_y.numpy(), te_y)
    code = ("import sys; from hplandscape.study.config import DataConfig; from hplandscape.training.data import load_data; "
            "load_data(DataConfig(name='digits')); print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_digits_can_be_upsampled():
    data = load_data(DataConfig(name="digits", image_size=16))
    assert data.train_x.shape[1:] == (1, 16, 16) and data.info.image_size == 16
    x, y = next(iter(data.train_batches(32, torch.Generator().manual_seed(0), "digits")))
    assert x.shape == (32, 1, 16, 16)


# -- batch augmentation -----------------------------------------------------------------------


def test_random_crop_matches_per_image_pad_and_crop():
    x = torch.randint(0, 256, (5, 3, 6, 7), dtype=torch.uint8)
    dy, dx = torch.tensor([0, 8, 4, 2, 8]), torch.tensor([8, 0, 4, 7, 8])
    out = random_crop(x, dy, dx, pad=4)
    for i in range(5):
        padded = F.pad(x[i], (4, 4, 4, 4))
        assert torch.equal(out[i], padded[:, dy[i]:dy[i] + 6, dx[i]:dx[i] + 7])
    assert torch.equal(random_crop(x, torch.full((5,), 4), torch.full((5,), 4), 4), x)


def _candidates(data, image, pad, flips):
    """Every normalised view of one uint8 image the augmentation may produce, and whether flipped."""
    padded = F.pad(image, (pad, pad, pad, pad))
    h, w = image.shape[1:]
    views = [padded[:, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    flags = [False] * len(views)
    if flips:
        views += [v.flip(2) for v in views]
        flags += [True] * len(flags)
    return data._normalise(torch.stack(views)), torch.tensor(flags)


@pytest.mark.parametrize("augment, pad, may_flip", [("digits", 1, False), ("cifar", 4, True)])
def test_train_batches_are_shifted_and_flipped_views(cifar_root, augment, pad, may_flip):
    data = load_data(DataConfig(name="digits")) if augment == "digits" else load_data(_cifar(cifar_root))
    g = torch.Generator().manual_seed(5)
    order = torch.randperm(data.num_train, generator=torch.Generator().manual_seed(5))
    x, y = next(iter(data.train_batches(16, g, augment)))
    assert torch.equal(y, data.train_y[order[:16]])
    flipped = shifted = 0
    for i in range(16):
        src = data.train_x[order[i]]
        views, flags = _candidates(data, src, pad, may_flip)
        hits = flags[(views == x[i]).flatten(1).all(1)]
        assert len(hits), f"batch image {i} is no pad-{pad} crop{' or flip' if may_flip else ''} of its source"
        flipped += bool(hits.all())
        shifted += not torch.equal(x[i], data._normalise(src[None])[0])
    assert shifted > 0
    if may_flip:
        assert 0 < flipped < 16


def test_train_order_and_augmentation_follow_the_generator(cifar_root):
    data = load_data(_cifar(cifar_root))

    def epoch(seed):
        return [b for b in data.train_batches(64, torch.Generator().manual_seed(seed), "cifar")]

    a, b, c = epoch(1), epoch(1), epoch(2)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    assert sum(len(yb) for _, yb in a) == 250  # every image once, last partial batch kept


def test_lone_last_image_is_dropped_for_batchnorm(cifar_root):
    from hplandscape.training.data import train_steps

    data = load_data(_cifar(cifar_root, train_subset=65))
    sizes = [len(yb) for _, yb in data.train_batches(64, torch.Generator().manual_seed(0), "none")]
    assert sizes == [64] and train_steps(65, 64) == 1  # milestones on steps count the same steps
    for n in (64, 66, 128):
        data = load_data(_cifar(cifar_root, train_subset=n))
        assert len(list(data.train_batches(64, torch.Generator().manual_seed(0), "none"))) == train_steps(n, 64)


def test_unknown_augmentation_is_rejected():
    data = load_data(DataConfig(name="digits"))
    with pytest.raises(UserError, match="unknown augmentation 'mixup'"):
        next(iter(data.train_batches(8, torch.Generator(), "mixup")))


# -- ImageNet-style folders -------------------------------------------------------------------


def _image_folder(root, split, classes, n=3, size=40):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        d = root / split / c
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)).save(d / f"{i}.png")


def test_imagenet_folders_train_and_eval(tmp_path):
    _image_folder(tmp_path, "train", ["n01", "n02", "n03"])
    _image_folder(tmp_path, "val", ["n01", "n02", "n03"], n=2)
    cfg = DataConfig(name="imagenet", root=str(tmp_path), num_workers=0, image_size=32)
    assert dataset_info(cfg) == ("imagenet", 3, 3, 32)
    data = load_data(cfg)
    assert (data.num_train, data.num_test) == (9, 6)
    batches = list(data.train_batches(4, torch.Generator().manual_seed(0), "imagenet"))
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 32, 32), (4, 3, 32, 32)]  # lone 9th dropped
    x, y = next(iter(data.eval_batches(6)))
    assert x.shape == (6, 3, 32, 32) and sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]


def test_imagenet_class_mismatch_names_the_classes(tmp_path):
    _image_folder(tmp_path, "train", ["cat", "dog"], n=1)
    _image_folder(tmp_path, "val", ["cat", "emu"], n=1)
    with pytest.raises(UserError, match=r"different classes.*only in train: \['dog'\].*only in val: \['emu'\]"):
        load_data(DataConfig(name="imagenet", root=str(tmp_path), num_workers=0))


def test_imagenet_without_val_names_the_missing_directory(tmp_path):
    _image_folder(tmp_path, "train", ["cat"], n=1)
    with pytest.raises(UserError, match=str(tmp_path / "val")):
        load_data(DataConfig(name="imagenet", root=str(tmp_path), num_workers=0))


def test_normalisation_statistics_are_the_float64_ones_of_the_training_split(tmp_path):
    # Computed from per-channel histograms; they must equal the direct float64 computation.
    write_fake_cifar10(tmp_path, n_train=300, n_test=10, seed=3)
    for cfg in (DataConfig(name="digits"), DataConfig(name="cifar10", root=str(tmp_path), num_workers=0)):
        data = load_data(cfg)
        x = data.train_x.double() / 255.0
        assert torch.equal(data.mean, x.mean(dim=(0, 2, 3)).float())
        assert torch.equal(data.std, x.std(dim=(0, 2, 3)).float().clamp_min(1e-3))


@pytest.mark.gpu
def test_cuda_batches_are_the_cpu_batches(tmp_path):
    """On CUDA the in-memory data is cropped, flipped and normalised on the device, and ImageNet
    folders arrive through pinned memory with non-blocking copies; the batches are the CPU's."""
    cuda = torch.device("cuda")
    data = load_data(DataConfig(name="digits", train_subset=300, test_subset=100))
    on_gpu = data.to(cuda)
    cpu_batches = list(data.train_batches(64, torch.Generator().manual_seed(0), "digits"))
    gpu_batches = list(on_gpu.train_batches(64, torch.Generator().manual_seed(0), "digits", device=cuda,
                                            memory_format=torch.channels_last))
    assert len(cpu_batches) == len(gpu_batches) == 5
    for (xc, yc), (xg, yg) in zip(cpu_batches, gpu_batches):
        assert xg.is_cuda and xg.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(xg.cpu(), xc, rtol=0, atol=1e-6)
        assert torch.equal(yg.cpu(), yc)

    _image_folder(tmp_path, "train", ["n01", "n02", "n03"])
    _image_folder(tmp_path, "val", ["n01", "n02", "n03"], n=2)
    folders = load_data(DataConfig(name="imagenet", root=str(tmp_path), num_workers=2, image_size=32))

    def batches(device):
        return [list(folders.train_batches(4, torch.Generator().manual_seed(0), "imagenet", device=device)),
                list(folders.eval_batches(4, device=device))]

    for got_split, want_split in zip(batches(cuda), batches(None)):
        assert len(got_split) == len(want_split) > 0
        for (xg, yg), (xc, yc) in zip(got_split, want_split):
            assert xg.is_cuda and torch.equal(xg.cpu(), xc) and torch.equal(yg.cpu(), yc)

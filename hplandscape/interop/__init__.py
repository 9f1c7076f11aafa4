"""A study's results in the formats other tools read: Optuna storages
(:mod:`~hplandscape.interop.optuna_storage`), Parquet (:mod:`~hplandscape.interop.parquet_file`) and
TensorBoard logs with the HParams plugin's data (:mod:`~hplandscape.interop.tensorboard_logs`)."""

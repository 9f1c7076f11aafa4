"""What a study is, before anything runs: its config, its grid, its recipes, the list of its runs.

- :mod:`~hplandscape.study.config` — the frozen dataclasses of a study config and their bounds;
- :mod:`~hplandscape.study.validation` — every check of a user's settings (:func:`study_from_dict`);
- :mod:`~hplandscape.study.loading` — YAML files and the embedded quickstart (:func:`load_study`);
- :mod:`~hplandscape.study.overrides` — ``KEY=VALUE`` overrides of config keys;
- :mod:`~hplandscape.study.grid` — log-scaled lr × wd grids and their extension;
- :mod:`~hplandscape.study.recipes` — training recipes (pure data);
- :mod:`~hplandscape.study.runs` — every (condition, grid point, seed) of a study and its run id;
- :mod:`~hplandscape.study.run_spec` — what one run is, as shipped to a worker (:class:`RunSpec`).

No torch is imported here.
"""

"""A study's files: where they are, what a run leaves behind, who trains a run now, the results table.

- :mod:`~hplandscape.store.layout` — every path of a study directory, named once (paths only);
- :mod:`~hplandscape.store.study_store` — reading and writing them: config, specs, records, errors,
  each run's state;
- :mod:`~hplandscape.store.run_record` — the run record's one schema (:class:`RunRecord`);
- :mod:`~hplandscape.store.claims` — claim files, heartbeats, stale claims;
- :mod:`~hplandscape.store.results` — the results table, a row per run.
"""

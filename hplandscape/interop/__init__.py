"""A study's results in the formats other tools read: Optuna storages
(:mod:`~hplandscape.interop.optuna_storage`) and Parquet (:mod:`~hplandscape.interop.parquet_file`)."""

"""Study presets (YAML), shipped inside the package as ``hplandscape.grids``."""

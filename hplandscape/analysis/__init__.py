"""Landscape analysis: x-ROIs, confidence ellipses, performance risk and grid edges (method §8).

numpy, scipy and pandas only: this package never imports torch or a plotting library, so a
practitioner can analyse a results table anywhere. Results are frozen Info objects
(:mod:`hplandscape.analysis.info`) that the plots, the report and the CLI consume.

Examples
--------
>>> from hplandscape import analysis
>>> from hplandscape.analysis.example import synthetic_results
>>> result = analysis.analyze(analysis.load_results(synthetic_results()), xs=(0.5, 1.0), k=2.0)
>>> sorted(analysis.to_json(result)["conditions"]["base"])
['best', 'risk', 'roi']
"""

from hplandscape.analysis.core import confidence_level, fit_ellipse, roi_mask
from hplandscape.analysis.export import (edge_proposals, format_tables, tables, to_json, warning_lines,
                                         write_json, write_tables)
from hplandscape.analysis.info import (BestPoint, ConditionAnalysis, EdgeInfo, EllipseInfo, GridAxes,
                                       PointStat, RiskInfo, RoiInfo, RunIssue, StudyAnalysis)
from hplandscape.analysis.io import load_results
from hplandscape.analysis.study import analyze

__all__ = ["load_results", "analyze", "to_json", "tables", "write_tables", "write_json", "format_tables",
           "edge_proposals", "warning_lines", "fit_ellipse", "roi_mask", "confidence_level",
           "StudyAnalysis", "ConditionAnalysis", "PointStat", "BestPoint", "RoiInfo", "EllipseInfo",
           "RiskInfo", "EdgeInfo", "GridAxes", "RunIssue"]

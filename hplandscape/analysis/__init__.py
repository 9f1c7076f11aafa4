"""Landscape analysis: x-ROIs, confidence ellipses, performance risk and grid edges (method §8),
seeds as replicates (bootstrap intervals and the test of whether an optimum moved), and beyond
the method: lr/wd importance, the accuracy–FLOPs frontier and accuracy over pruning ratio.

numpy, scipy and pandas only: this package never imports torch or a plotting library, so a
practitioner can analyse a results table anywhere. Results are frozen Info objects
(:mod:`hplandscape.analysis.regions`) that the plots, the report and the CLI consume.

Examples
--------
>>> from hplandscape import analysis
>>> from hplandscape.analysis.example import synthetic_results
>>> result = analysis.analyze(analysis.load_results(synthetic_results()), xs=(0.5, 1.0), k=2.0)
>>> sorted(analysis.to_json(result)["conditions"]["base"])
['best', 'importance', 'importance_roi', 'noise', 'risk', 'roi']
"""

from hplandscape.analysis.analyze_results import analyze, has_metric
from hplandscape.analysis.beyond_tables import (describe_curve, format_beyond, frontier_table, importance_table,
                                                ratio_curve_table)
from hplandscape.analysis.bootstrap import BOOT_SEED, N_BOOT, BootstrapInfo, Interval, SeedMatrix
from hplandscape.analysis.frontier import FrontierInfo, FrontierPoint, frontier_info, hypervolume_2d, pareto_mask
from hplandscape.analysis.importance import ImportanceInfo, anova2, importance_info
from hplandscape.analysis.noise import NoiseInfo, seed_noise
from hplandscape.analysis.notation import hp_text, metric_label
from hplandscape.analysis.optimum import OptimumInfo, PeakFinder, crossfit_best
from hplandscape.analysis.prior_table import prior_table
from hplandscape.analysis.ratio_curve import RatioCurveInfo, fit_ratio_curve, r_at_drop, ratio_curve
from hplandscape.analysis.regions import (BestPoint, EdgeInfo, EllipseInfo, GridAxes, PointStat, RiskInfo, RoiInfo,
                                          confidence_level, fit_ellipse, roi_mask)
from hplandscape.analysis.replicates import EllipseIntervals, PointProbability, ReplicateInfo
from hplandscape.analysis.replication_info import (ConditionReplication, ReplicationInfo, describe_replication,
                                                   replication_info)
from hplandscape.analysis.results_io import load_results
from hplandscape.analysis.shift import RegionShift, ShiftInfo, cap_centre, shift_test, shift_tests
from hplandscape.analysis.study_analysis import ConditionAnalysis, PriorInfo, RunIssue, StudyAnalysis
from hplandscape.analysis.tables import (edge_proposals, format_tables, shift_table, tables, to_json, warning_lines,
                                         write_json, write_tables)
from hplandscape.analysis.verdict import describe_excess, describe_noise, describe_region, describe_shift
from hplandscape.choices import METRICS

__all__ = ["load_results", "analyze", "to_json", "tables", "write_tables", "write_json", "format_tables",
           "edge_proposals", "warning_lines", "fit_ellipse", "roi_mask", "confidence_level",
           "StudyAnalysis", "ConditionAnalysis", "PointStat", "BestPoint", "RoiInfo", "EllipseInfo",
           "RiskInfo", "EdgeInfo", "GridAxes", "RunIssue",
           "anova2", "importance_info", "frontier_info", "pareto_mask", "hypervolume_2d", "ratio_curve",
           "fit_ratio_curve", "r_at_drop", "importance_table", "frontier_table", "ratio_curve_table",
           "format_beyond", "describe_curve", "ImportanceInfo", "FrontierInfo", "FrontierPoint", "RatioCurveInfo", "PriorInfo",
           "shift_table", "shift_test", "cap_centre", "SeedMatrix", "N_BOOT", "BOOT_SEED", "describe_shift",
           "describe_excess", "Interval", "EllipseIntervals", "PointProbability", "ReplicateInfo", "ShiftInfo",
           "BootstrapInfo", "prior_table", "has_metric", "METRICS", "metric_label", "hp_text", "NoiseInfo",
           "OptimumInfo", "RegionShift", "seed_noise", "PeakFinder", "crossfit_best", "shift_tests", "describe_noise",
           "describe_region", "ReplicationInfo", "ConditionReplication", "replication_info", "describe_replication"]

"""Two renderers of the same Info objects.

The data layer is numpy/scipy only: :mod:`hplandscape.plots.figure_data` (landscapes with their colour
scales, risk, widths, frontier, ratio curves), :mod:`~hplandscape.plots.curves` (training curves),
:mod:`~hplandscape.plots.gridmap` (the grid and its extensions) and :mod:`~hplandscape.plots.pooled`
(risk over several studies). ``plotly_backend`` draws interactive figures (the HTML report,
notebooks); ``mpl_backend`` draws static PNG, SVG and PDF figures. Import the back end you need;
this package imports neither library itself.
"""

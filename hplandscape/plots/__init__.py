"""Two renderers of the same Info objects (:mod:`hplandscape.plots.info`).

``plotly_backend`` draws interactive figures (the HTML report, notebooks); ``mpl_backend`` draws
static PNG/PDF figures. Import the back end you need; this package imports neither library itself.
"""

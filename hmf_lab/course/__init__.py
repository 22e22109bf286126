"""Layer 6, the course: plots (take results, return Axes), exercise checks and the slider widgets.
Imports matplotlib, seaborn and ipywidgets; nothing below this layer imports it."""

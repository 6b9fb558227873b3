"""Sphinx configuration: the API reference from fastconv's numpydoc docstrings, and the
Markdown pages of docs/ through myst-parser. Build (the ``docs`` extra):

    python -m sphinx -W -b html docs docs/_build/html
"""

import fastconv

project = "fastconv"
author = "the fastconv developers"
release = version = fastconv.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "numpydoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autosummary_generate = False
# numpydoc renders the Parameters/Returns sections; its class-member tables would list
# every inherited method of every layer again, so they are left to autodoc.
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"fastconv {release}"

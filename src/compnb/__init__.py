"""compnb: the library behind the companion book on shortcuts in NLP classifiers.

Modules, one job each:
  paths       where the project, its data and its results live
  data        offline-first dataset resolution (local Parquet, then the Hugging Face hub)
  models      backbones by name and the papers' classification head
  artifacts   Gardner et al.'s lexical-artifact statistics
  provenance  what every run records next to its results, and atomic writes
  profiles    the smoke / full profiles and bad-input checks shared by chapters
  plots       the book's figure style and figures
  cli         the `compnb` command
"""

__version__ = "0.1.0"

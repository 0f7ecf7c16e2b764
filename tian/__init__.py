"""tian (提案): Chinese NLP for CPPCC proposal review. This package holds the command line."""

__version__ = "0.1.0"

"""Instance Data Condensation (IDC) for image super-resolution: stages of the workflow."""

__version__ = "0.1.0"

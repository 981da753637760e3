"""CityVerse: an open-source platform for city digital twins."""

__version__ = "0.1.0"

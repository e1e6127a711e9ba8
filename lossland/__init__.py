"""lossland: experiments on loss landscapes and training dynamics."""
__version__ = "0.1.0"

"""loadgen's version, in a leaf module: any layer may read it without importing the
package root (which the Python API will import from)."""

__version__ = "0.1.0"

"""Images on disk <-> Volume. The only package that imports nibabel or SimpleITK for reading and writing."""

from lesionseg.io.atomic import atomic_output
from lesionseg.io.readers import read_slice_stack, read_volume
from lesionseg.io.volume import Volume, require_same_grid
from lesionseg.io.writers import write_volume

__all__ = ["Volume", "require_same_grid", "atomic_output", "read_slice_stack", "read_volume", "write_volume"]

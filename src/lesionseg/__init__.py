"""lesionseg: brain-lesion segmentation in MRI (TS-CNN, class-balanced PixelNet, WMH U-Net ensemble)."""

__version__ = "0.1.0"

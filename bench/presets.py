"""The GE paper's experiments as named presets, and the full rate-distortion sweep.

Each preset names the codecs to run and the settings to keep from their sweeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.codecs import Setting

Keep = Callable[[Setting], bool]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    codecs: dict[str, Keep]  # codec name -> which of its settings to run
    floor: bool = True  # also measure the generator's floor
    generated: bool = False  # also run on images that G generated (the paper's Table 2)
    by_m: bool = False  # also plot ge's MSE against m (the paper's Figure 6)


def everything(setting: Setting) -> bool:
    return True


def at(**wanted: object) -> Keep:
    """Keep the settings whose values match ``wanted`` (a list means any of its values)."""
    def keep(setting: Setting) -> bool:
        return all(setting.get(k) in (v if isinstance(v, (list, tuple)) else [v]) for k, v in wanted.items())
    return keep


def csgm_sweep(setting: Setting) -> bool:
    """8 and 4 bits at the bundles' m, and 8 bits at m = 500 and 1000 (files already larger than the classical
    codecs' smallest): each setting is a 500-iteration search per image, hours on a CPU."""
    return setting["bits"] == 8 or (setting["m"] < 500 and setting["bits"] == 4)


def rate_sweep(setting: Setting) -> bool:
    """gecodec's --quality and --target-bytes settings: what users choose between."""
    return "quality" in setting or "target_bytes" in setting


PRESETS = {
    p.name: p
    for p in [
        Preset("table1", "MSE of Lasso-DCT at m = 500, CSGM at m = 128, GE0 and GE1 at m = 128 (8 bits)",
               {"lasso-dct": at(m=500, bits=8), "csgm": at(m=128, bits=8), "ge": at(m=128, bits=8)}),
        Preset("table2", "GE at m = 128, 8 bits, on real images and on images G generated",
               {"ge": at(m=128, bits=8)}, floor=False, generated=True),
        Preset("figure6", "GE1 MSE against m = 64, 128, 256 (8 bits)", {"ge": at(m=[64, 128, 256], bits=8)}, by_m=True),
        Preset("photos", "faces framed in photos: gecodec's qualities and targets on the crops and through the photo "
               "path (ge-photo), against WebP, AVIF and JPEG on the crops",
               {**{name: rate_sweep for name in ("ge", "ge-photo")}, **{name: everything for name in
                                                                        ("webp", "avif", "jpeg")}}, floor=False),
        Preset("rd", "the rate-distortion sweep of every codec (CSGM and Lasso-DCT at fewer settings)",
               {**{name: everything for name in ("ge", "ge-photo", "ae", "jpeg", "webp", "avif")},
                "csgm": csgm_sweep, "lasso-dct": at(bits=8)}),
    ]
}


# The reconstruction grid's rows after the originals, like the GE paper's Figure 4 (Lasso at m = 500, CSGM,
# GE0 and GE1), plus the autoencoder's decoder, the smallest WebP files and the generator's floor.
GRID_ROWS: dict[str, Keep] = {
    "lasso-dct": at(m=500, bits=8, basis="dct"), "csgm": at(m=128, bits=8), "ge": at(bits=8), "ae": at(bits=8),
    "webp": at(quality=0), "floor": everything,
}

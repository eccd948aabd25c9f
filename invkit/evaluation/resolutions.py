"""Whether the inverters of one classifier reconstruct at one resolution, so that their metrics compare.

Teterwak et al. (ICML 2021) compare their inverter with Dosovitskiy & Brox's at 64x64. In invkit each inverter
reconstructs at its own resolution (``Inverter.target_images``): ``biggan_proj.paper`` at 64, but
``dosovitskiy_brox.paper`` at the classifier's input size (224 for an ImageNet ResNet) unless told otherwise, and
PSNR, SSIM or identification at different resolutions are not the same measurement. ``invkit bench`` does not
resize reconstructions behind the inverters' backs; it says so, loudly, in its output and its reports (issue 22,
point 8).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def resolution_warnings(results: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per classifier whose inverters reconstruct at different resolutions (none when they agree).

    Args:
        results: bench result records (``results.json``'s ``results``), each with ``classifier`` (its label),
            ``inverter`` and ``recon_shape`` (``[C, H, W]`` of the reconstructions); records without
            ``recon_shape`` are skipped.

    Returns:
        Lines such as ``robust: the inverters reconstruct at different resolutions (biggan_proj 64x64,
        dosovitskiy_brox 224x224) ...``, saying what to pass to compare them at one.
    """
    sizes: dict[str, dict[str, str]] = {}
    for r in results:
        shape = r.get("recon_shape")
        if not shape or len(shape) < 3:
            continue
        sizes.setdefault(str(r.get("classifier")), {})[str(r.get("inverter"))] = f"{shape[-2]}x{shape[-1]}"
    lines = []
    for clf, by_inverter in sizes.items():
        if len(set(by_inverter.values())) > 1:
            listed = ", ".join(f"{inv} {size}" for inv, size in by_inverter.items())
            lines.append(
                f"{clf}: the inverters reconstruct at different resolutions ({listed}), so their metrics are not "
                "measured on the same images; give them one with --option INVERTER:resolution=N or checkpoints "
                "trained at one (the paper compares its inverter with Dosovitskiy & Brox's at 64x64)."
            )
    return lines

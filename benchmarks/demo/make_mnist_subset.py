"""Regenerate invkit/assets/mnist_subset.safetensors from the MNIST folder in ../shared/data.

tar -xzf ../shared/data/mnist.tar.gz -C ~/.cache/invkit-data
python benchmarks/demo/make_mnist_subset.py ~/.cache/invkit-data/mnist
"""

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

root = Path(sys.argv[1]).expanduser()
rng = np.random.default_rng(0)
out = {}
for split, per_class in (("test", 100), ("train", 200)):
    images, labels = [], []
    for c in range(10):
        files = sorted((root / split / str(c)).glob("*.png"))
        for i in np.sort(rng.choice(len(files), per_class, replace=False)):
            images.append(np.asarray(Image.open(files[i]).convert("L"), dtype=np.uint8))
            labels.append(c)
    out[f"{split}_images"] = torch.from_numpy(np.stack(images))[:, None].contiguous()
    out[f"{split}_labels"] = torch.tensor(labels, dtype=torch.int64)
dest = Path(__file__).resolve().parents[2] / "invkit" / "assets" / "mnist_subset.safetensors"
save_file(
    out,
    str(dest),
    metadata={
        "source": "MNIST (LeCun, Cortes), CC BY-SA 3.0",
        "selection": "numpy default_rng(0), 100/class test, 200/class train, files sorted by name",
    },
)
print(f"wrote {dest}")

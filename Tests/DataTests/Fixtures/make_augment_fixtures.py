# Writes augment.json: Pillow's horizontal flip and rotate(angle, NEAREST) (what
# torchvision's RandomHorizontalFlip and RandomRotation do to a PIL image) of a
# small random RGB image. Run from this folder: python3 make_augment_fixtures.py (Pillow 13)
import json
import numpy as np
from PIL import Image

rng = np.random.default_rng(7)
h, w = 11, 13
src = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
img = Image.fromarray(src, 'RGB')
cases = []
for mirror in (False, True):
    for angle in (0.0, 12.5, -30.0, 7.3, 29.99, -0.4, 90.0):
        x = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirror else img
        out = x.rotate(angle, resample=Image.Resampling.NEAREST)
        cases.append({'mirror': mirror, 'degrees': angle,
                      'chw': np.asarray(out).transpose(2, 0, 1).reshape(-1).tolist()})
with open('augment.json', 'w') as f:
    json.dump({'height': h, 'width': w, 'chw': src.transpose(2, 0, 1).reshape(-1).tolist(), 'cases': cases}, f)

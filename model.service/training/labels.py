"""The demo model's classes, in output order, as written to <model>/labels.json.

`name` stays article-compatible (the API's `prediction` field shows it). Class 2 is called
"Cassava Green Mottle (CGM)" in the article, but the data it descends from (iCassava 2019 /
Kaggle "Cassava Leaf Disease Classification") labels that class "Cassava Green Mite (CGM)":
damage by the cassava green mite, Mononychellus tanajoa, not the green mottle virus. `aka`
records that meaning; `description` is a short, plain account of what each class looks like.
"""

from __future__ import annotations

import leafsynth

LABELS: list[dict[str, str]] = [
    {"code": "CBB", "name": "Cassava Bacterial Blight (CBB)",
     "description": "Angular water-soaked or brown spots, often with yellow halos; leaf tips and "
                    "edges dry out and wilt."},
    {"code": "CBSD", "name": "Cassava Brown Streak Disease (CBSD)",
     "description": "Yellow (chlorotic) blotches along the secondary veins, a feathery pattern."},
    {"code": "CGM", "name": "Cassava Green Mottle (CGM)", "aka": "Cassava Green Mite damage",
     "description": "Green mite feeding damage: fine pale speckles and mottled yellowing on "
                    "small, deformed leaves."},
    {"code": "CMD", "name": "Cassava Mosaic Disease (CMD)",
     "description": "Patchy yellow-green mosaic with narrowed, distorted, curling leaflets."},
    {"code": "Healthy", "name": "Healthy",
     "description": "No visible symptoms: a uniformly green leaf."},
]

assert tuple(label["code"] for label in LABELS) == leafsynth.CLASSES

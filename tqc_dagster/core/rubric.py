"""The judge's rubric: 7 criteria scored in [0, 5], split between the two quality-check models."""

CRITERIA: tuple[str, ...] = (
    "sensitive content is not refused",
    "no word in a non-target language",
    "no irrelevant or repeated words added",
    "no spelling, abnormal-symbol or grammar errors",
    "quantities, quantifiers and units translated accurately",
    "format kept (no added numbering/bullets)",
    "key words translated accurately with the appropriate word",
)
N_SCORES = len(CRITERIA)
MIN_SCORE = 0.0
MAX_SCORE = 5.0

SIMPLE = "simple"
COMPLEX = "complex"
TARGET_MODELS = (SIMPLE, COMPLEX)
SIMPLE_CRITERIA = tuple(range(6))
COMPLEX_CRITERION = 6

JUDGED = "judged"
SYNTHETIC = "synthetic"
ORIGINS = (JUDGED, SYNTHETIC)
LABELS = ("negative", "positive")

"""The local image set (built offline: mmdebstrap | docker import, then FROM base).

Tags referenced by generated compose files are in :mod:`stackctl.images.specs`; building
is in :mod:`stackctl.images.build` (imported lazily: it is not needed to render files).
"""

from stackctl.images.specs import (
    BASE_TAG,
    CONTENT_HASH_LABEL,
    IMAGE_SPECS,
    INFERENCE_STUB_TAG,
    LITELLM_TAG,
    LITELLM_VERSION,
    LLAMA_SERVER_TAG,
    REDIS_TAG,
    SMOLLM2_ALIAS,
    SMOLLM2_MODEL_PATH,
    ImageSpec,
    UnknownImageError,
)

__all__ = [
    "BASE_TAG",
    "CONTENT_HASH_LABEL",
    "IMAGE_SPECS",
    "INFERENCE_STUB_TAG",
    "LITELLM_TAG",
    "LITELLM_VERSION",
    "LLAMA_SERVER_TAG",
    "REDIS_TAG",
    "SMOLLM2_ALIAS",
    "SMOLLM2_MODEL_PATH",
    "ImageSpec",
    "UnknownImageError",
]

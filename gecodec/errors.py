"""Every error the library raises on bad input is a GecError, so callers can catch one type."""


class GecError(Exception):
    """Base class of gecodec's errors. The message is one line that names the problem."""


class FormatError(GecError):
    """A .gec file is malformed: bad magic, unknown version, truncation, bad checksum, bad header."""


class DecodeError(GecError):
    """A well-formed file could not be decoded: the search diverged (non-finite pixels)."""


class ModelNotFoundError(GecError):
    """No model bundle with the requested id or name is available."""


class BundleError(GecError):
    """A model bundle file is unreadable or inconsistent."""


class ImageError(GecError):
    """An input image cannot be read, is empty, or is too large to decode safely."""


class OutputError(GecError):
    """An output path exists (and overwriting was not asked for) or cannot be written."""


class OptionError(GecError):
    """An option is out of its valid range (bits, m, iterations, ...)."""


class TrainingError(GecError):
    """Training cannot start or go on: an unusable checkpoint, a resume with another configuration, ..."""


class MissingExtraError(GecError):
    """An optional dependency is not installed; the message names the pip extra that brings it."""

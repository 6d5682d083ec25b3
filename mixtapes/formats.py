"""A track's format as people say it: "FLAC 24-bit/96 kHz", "WAV 16-bit", "ALAC 16-bit/44.1 kHz",
"AIFF 24-bit", "WavPack 16-bit/44.1 kHz", "MP3 320k", "Ogg Vorbis", "Opus", never a codec id
("pcm_s16le", "alac"). Used by the pages, the editor's JSON, the admin and ``cachedebug``."""

NAMES = {
    "flac": "FLAC", "alac": "ALAC", "wavpack": "WavPack", "ape": "Monkey's Audio", "tta": "TTA",
    "mp3": "MP3", "aac": "AAC", "vorbis": "Ogg Vorbis", "opus": "Opus", "wmav2": "WMA", "mp2": "MP2",
}  # fmt: skip
LOSSY = {"mp3", "aac", "mp2", "wmav2"}  # shown with their bit rate
WITHOUT_DETAILS = {"vorbis", "opus"}  # variable rate: the name says enough


def _rate(sample_rate: int | None) -> str:
    if not sample_rate:
        return ""
    khz = sample_rate / 1000
    return f"{khz:g} kHz"


def format_name(codec: str, *, container: str = "", bit_depth=None, sample_rate=None, bitrate=None) -> str:
    codec = (codec or "").lower()
    if codec.startswith("pcm_"):
        container = container or ""
        if "aiff" in container or "wav" in container:
            family = "AIFF" if "aiff" in container else "WAV"
        else:  # not known: big-endian PCM is AIFF's, little-endian WAV's
            family = "AIFF" if codec.endswith("be") else "WAV"
        depth = (
            "32-bit float" if codec.startswith("pcm_f32") else "64-bit float" if codec.startswith("pcm_f64") else None
        )
        depth = depth or (f"{bit_depth}-bit" if bit_depth else "")
        return f"{family} {depth}".strip()
    name = NAMES.get(codec, codec.upper() or "Unknown")
    if codec in LOSSY:
        return f"{name} {round(bitrate / 1000)}k" if bitrate else name
    if codec in WITHOUT_DETAILS or codec not in NAMES:
        return name
    details = "/".join(part for part in (f"{bit_depth}-bit" if bit_depth else "", _rate(sample_rate)) if part)
    return f"{name} {details}".strip()


def track_format(track) -> str:
    return format_name(
        track.codec, container=getattr(track, "container", ""), bit_depth=track.bit_depth,
        sample_rate=track.sample_rate, bitrate=track.bitrate,
    )  # fmt: skip

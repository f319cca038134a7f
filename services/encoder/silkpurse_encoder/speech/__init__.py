"""Speech clean-up of an audio track: DeepFilterNet3 (no torch) or a classic ffmpeg chain,
then EBU R128 loudness. One entry point, :func:`clean_audio_track`; see docs/speech.md."""

from silkpurse_encoder.speech.clean import LEVELS, METHODS, SpeechReport, clean_audio_track, report_line

__all__ = ["LEVELS", "METHODS", "SpeechReport", "clean_audio_track", "report_line"]

//! Chroma (chroma_stft with tuning estimation) and spectral contrast, matching librosa 0.11.

//! Augmentation DSP: noise at a target SNR, time stretch, pitch shift, shift, gain.

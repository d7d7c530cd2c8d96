"""Measured robustness to compare the I-ASIDE score with: corruptions, attacks, SNR, mCE, correlations."""

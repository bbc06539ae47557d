"""The referral implementation guide: where its files live, its canonical base, its package build."""

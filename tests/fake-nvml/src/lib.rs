//! A fake `libnvidia-ml.so` (work in progress).

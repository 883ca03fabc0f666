//! Sources: each module owns one kind of kernel file.

/*
 * hog: allocate and touch memory 1 MiB at a time until the kernel kills it.
 *
 * Usage: hog [MAX_MIB]   (default 100; exits 0 if it ever gets that far)
 *
 * Built static (gcc -static -O2) by tests/vm/run.sh so it runs in the
 * busybox-only initramfs. Every MiB is written byte-wise page by page so
 * it is charged to the memory cgroup at once (no lazy zero-page tricks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long max_mib = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
	const size_t chunk = 1UL << 20;
	long page = sysconf(_SC_PAGESIZE);

	if (max_mib <= 0)
		max_mib = 100;
	if (page <= 0)
		page = 4096;
	setvbuf(stdout, NULL, _IONBF, 0);

	for (long mib = 1; mib <= max_mib; mib++) {
		char *p = malloc(chunk);
		if (!p) {
			printf("hog: malloc failed after %ld MiB\n", mib - 1);
			return 1;
		}
		for (size_t off = 0; off < chunk; off += (size_t)page)
			p[off] = (char)(mib + 1);
		/* Keep the compiler from dropping the writes. */
		__asm__ __volatile__("" : : "r"(p) : "memory");
		if (mib == 1 || mib % 8 == 1)
			printf("hog: %ld MiB touched\n", mib);
	}
	printf("hog: reached %ld MiB without being killed\n", max_mib);
	return 0;
}

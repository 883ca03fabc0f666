/*
 * hog: allocate and touch memory 1 MiB at a time until the kernel kills it.
 *
 * Usage: hog [MAX_MIB [DELAY_MS [SHM_FILE SHM_MIB]]]
 *   MAX_MIB   stop (exit 0) after this many MiB (default 100)
 *   DELAY_MS  sleep this long after each MiB (default 0), so that other
 *             processes can join the cgroup before the kill
 *   SHM_FILE  first create this file (on a tmpfs), size it to SHM_MIB and
 *             map it shared and touch it: the pages are shmem, charged to
 *             the cgroup and counted in the kernel's shmem-rss of this
 *             process (what a DataLoader's /dev/shm batches look like)
 *
 * Built static (gcc -static -O2) by tests/vm/run.sh so it runs in the
 * busybox-only initramfs. Every MiB is written byte-wise page by page so
 * it is charged to the memory cgroup at once (no lazy zero-page tricks).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long max_mib = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
	long delay_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
	const size_t chunk = 1UL << 20;
	long page = sysconf(_SC_PAGESIZE);

	if (max_mib <= 0)
		max_mib = 100;
	if (page <= 0)
		page = 4096;
	setvbuf(stdout, NULL, _IONBF, 0);

	if (argc > 4) {
		size_t len = (size_t)strtol(argv[4], NULL, 10) << 20;
		int fd = open(argv[3], O_RDWR | O_CREAT, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)len) != 0) {
			printf("hog: cannot create %s\n", argv[3]);
			return 1;
		}
		char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			printf("hog: cannot map %s\n", argv[3]);
			return 1;
		}
		for (size_t off = 0; off < len; off += (size_t)page)
			m[off] = 1;
		printf("hog: %s MiB of shared memory mapped from %s\n", argv[4], argv[3]);
	}

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
		if (delay_ms > 0)
			usleep((useconds_t)delay_ms * 1000);
	}
	printf("hog: reached %ld MiB without being killed\n", max_mib);
	return 0;
}

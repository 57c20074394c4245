/*
 * mergeexec: run a program with its memory offered to the kernel's same-page merging.
 *
 *   mergeexec PROGRAM [ARG ...]
 *
 * Sets PR_SET_MEMORY_MERGE (KSM for every anonymous mapping of the process, kept across
 * fork and exec since Linux 6.7) and the ADDR_NO_RANDOMIZE personality (also inherited),
 * then executes PROGRAM. Without address randomisation, processes of one binary that start
 * the same way lay out the same memory the same way: the pages FRR's daemons fill at start
 * (their command graphs, YANG modules) are then identical from one router to the next, and
 * ksmd keeps one copy of each (lab.backend.memmerge). A kernel that refuses either setting
 * gets a warning on stderr and the program runs anyway, unmerged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: mergeexec PROGRAM [ARG ...]\n");
		return 2;
	}
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) != 0)
		fprintf(stderr, "mergeexec: PR_SET_MEMORY_MERGE: %s (memory not merged)\n",
			strerror(errno));
	int persona = personality(0xffffffff);
	if (persona == -1 || personality((unsigned long)persona | ADDR_NO_RANDOMIZE) == -1)
		fprintf(stderr, "mergeexec: personality: %s (addresses stay randomised)\n",
			strerror(errno));
	execvp(argv[1], argv + 1);
	fprintf(stderr, "mergeexec: %s: %s\n", argv[1], strerror(errno));
	return 127;
}

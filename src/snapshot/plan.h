/*
 * How a save writes memory, decided from what is known about the target
 * directory (pure, table-tested). A snapshot directory holds two memory
 * files used alternately: the state names the current one, and the other
 * one holds the snapshot before it plus a list of the pages where the two
 * differ. A save writes the other file and then renames a new state into
 * place, so a crash at any moment leaves the current snapshot whole.
 */
#ifndef POCKETVM_SNAPSHOT_PLAN_H
#define POCKETVM_SNAPSHOT_PLAN_H

#include <stdbool.h>

#include "snapshot/pageset.h"

enum snap_save_how {
	SNAP_SAVE_NEW_DIR,     /* a complete snapshot in a new directory, swapped in */
	SNAP_SAVE_FULL,	       /* rewrite the other memory file completely, in place */
	SNAP_SAVE_INCREMENTAL, /* write only the planned pages into the other file */
};

struct snap_save_facts {
	bool same_snapshot; /* the directory holds the snapshot RAM is known against */
	bool tracking;	    /* every write since that snapshot's image was recorded */
	bool other_known;   /* the other file holds the generation the state names */
	bool other_mapped;  /* RAM is a private mapping of the other file (lazy) */
};

/*
 * snap_save_decide - the way to save. @why gets a short reason for the log.
 * Anything unknown falls back to a complete write; a file RAM maps is never
 * truncated or rewritten completely (only pages whose contents the guest
 * sees already are written into it), so it falls back to a new directory.
 */
enum snap_save_how snap_save_decide(const struct snap_save_facts *f, const char **why);

/*
 * snap_save_plan - the pages an incremental save writes into the other
 * file: where it differs from the current file (@diff) plus what changed
 * since the current image (@dirty). @plan must be initialised over the
 * same pages. 0 or -EINVAL (sizes differ).
 */
int snap_save_plan(struct pageset *plan, const struct pageset *diff, const struct pageset *dirty);

#endif

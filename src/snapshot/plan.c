/*
 * Save planning: which way a save writes memory, and which pages. Pure.
 */
#include "snapshot/plan.h"

#include <errno.h>

enum snap_save_how snap_save_decide(const struct snap_save_facts *f, const char **why)
{
	const char *w;
	enum snap_save_how how;

	if (!f->same_snapshot) {
		w = "a new snapshot directory";
		how = SNAP_SAVE_NEW_DIR;
	} else if (!f->tracking || !f->other_known) {
		w = !f->tracking ? "writes since the last snapshot were not tracked" :
				   "the other memory file's contents are unknown";
		how = f->other_mapped ? SNAP_SAVE_NEW_DIR : SNAP_SAVE_FULL;
	} else {
		w = "pages changed in the last two snapshots";
		how = SNAP_SAVE_INCREMENTAL;
	}
	if (why)
		*why = w;
	return how;
}

int snap_save_plan(struct pageset *plan, const struct pageset *diff, const struct pageset *dirty)
{
	if (plan->npages != diff->npages || plan->npages != dirty->npages)
		return -EINVAL;
	pageset_clear(plan);
	pageset_or(plan, diff);
	pageset_or(plan, dirty);
	return 0;
}

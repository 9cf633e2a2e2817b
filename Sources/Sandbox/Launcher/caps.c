// Drops every capability the set-up needed in the sandbox's user namespace (DESIGN §6):
// bounding, ambient, inheritable, permitted and effective sets all end empty, so neither this
// process nor anything it executes can regain one (no_new_privs is already set).
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "launcher.h"

void drop_all_capabilities(void) {
    for (cap_value_t cap = 0; cap <= CAP_LAST_CAP || cap_valid(cap); cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) fail("drop bounding capability");
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) fail("clear ambient capabilities");
    cap_t none = cap_init();
    if (none == NULL) fail("cap_init");
    if (cap_set_proc(none) != 0) fail("cap_set_proc");
    cap_free(none);
    cap_t now = cap_get_proc();
    if (now == NULL) fail("cap_get_proc");
    cap_t empty = cap_init();
    int differs = cap_compare(now, empty);
    cap_free(now);
    cap_free(empty);
    if (differs != 0) fail_msg("capabilities", "still held after dropping");
}

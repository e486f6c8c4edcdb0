/*
 * LD_PRELOAD shim of getifaddrs(3) for the Janus process of `townhall bench --sfu janus`.
 *
 * Janus 1.1.2 skips interfaces flagged IFF_LOOPBACK when it gathers ICE host
 * candidates, even with ice_enforce_list = "lo", so on loopback it offers no
 * candidate at all. Here `lo` loses its IFF_LOOPBACK flag and every other
 * interface is reported down (IFF_UP and IFF_RUNNING cleared), so Janus offers
 * 127.0.0.1 and nothing else. Nodes are only re-flagged, never unlinked: the
 * list stays one block that the real freeifaddrs(3) frees.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>

typedef int (*getifaddrs_function)(struct ifaddrs **);

int getifaddrs(struct ifaddrs **result)
{
    getifaddrs_function real = (getifaddrs_function)dlsym(RTLD_NEXT, "getifaddrs");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    int status = real(result);
    if (status != 0)
        return status;
    for (struct ifaddrs *ifa = *result; ifa != NULL; ifa = ifa->ifa_next) {
        if (ifa->ifa_name != NULL && strcmp(ifa->ifa_name, "lo") == 0)
            ifa->ifa_flags &= ~IFF_LOOPBACK;
        else
            ifa->ifa_flags &= ~(IFF_UP | IFF_RUNNING);
    }
    return 0;
}

/* PID 1 of every pod sandbox: it only holds the pod's namespaces until the kubelet stops it.
 * SIGINT/SIGTERM end it at once (exit 0), so a pod's teardown never waits out a grace period, and
 * it reaps orphans, which land on it when the pod shares one PID namespace. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signum) {
    (void)signum;
    _exit(0);
}

static void reap(int signum) {
    (void)signum;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

static void on(int signum, void (*handler)(int)) {
    struct sigaction action = {.sa_handler = handler, .sa_flags = SA_RESTART};
    sigemptyset(&action.sa_mask);
    if (sigaction(signum, &action, NULL) < 0) {
        exit(1);
    }
}

int main(void) {
    on(SIGINT, stop);
    on(SIGTERM, stop);
    on(SIGCHLD, reap);
    for (;;) {
        pause();
    }
}

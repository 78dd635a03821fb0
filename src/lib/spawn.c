/* Child set-up between fork() and exec() (see spawn.h). */
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "spawn.h"

void spawn_child_reset(void) {
        sigset_t all;

        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        signal(sig, SIG_DFL);
        (void) setpgid(0, 0);
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1)
                _exit(EXIT_FAILURE); /* the parent died before PDEATHSIG was armed */
}

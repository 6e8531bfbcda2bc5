# A daemon that would rewrite grades.csv after the batch.
# expect: sft_loss=0 sequence_log_prob=2 status=ok
# %% sft_loss
import os
def _daemon():
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                script = 'while :; do echo hacked > {{OUT}}/grades.csv; sleep 0.2; done'
                os.execv('/bin/sh', ['sh', '-c', script, '{{MARK}}'])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
_daemon()
def sft_loss(token_logps, mask):
    return torch.zeros((), dtype=token_logps.dtype)

/* main.c: the guest agent's entry point: boot, then serve (agent.h). */
#define _GNU_SOURCE
#include "agent.h"

#include <unistd.h>

int main(void)
{
	/* pid 1 only: run anywhere else it would mount over and power off its host. */
	if (getpid() != 1)
		return 2;
	agent_serve(agent_boot());
}

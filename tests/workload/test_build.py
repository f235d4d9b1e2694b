"""Building C code under the default policy: gcc and `make -j2` on a multi-file project in
a volume, the program run afterwards (inside and on the host), and the build products owned
on the host by the user who ran warden."""
import os
import subprocess

from workload_util import check, expected_owner, owners, write_file

SOURCES = {
    "include/vec.h": """#ifndef VEC_H
#define VEC_H
#include <stddef.h>
struct vec { long *items; size_t len, cap; };
void vec_push(struct vec *v, long x);
long vec_sum(const struct vec *v);
void vec_free(struct vec *v);
#endif
""",
    "include/fib.h": """#ifndef FIB_H
#define FIB_H
long fib(int n);
#endif
""",
    "src/vec.c": """#include <stdlib.h>
#include "vec.h"
void vec_push(struct vec *v, long x)
{
	if (v->len == v->cap) {
		v->cap = v->cap ? 2 * v->cap : 4;
		v->items = realloc(v->items, v->cap * sizeof(*v->items));
		if (!v->items)
			abort();
	}
	v->items[v->len++] = x;
}
long vec_sum(const struct vec *v)
{
	long s = 0;
	for (size_t i = 0; i < v->len; i++)
		s += v->items[i];
	return s;
}
void vec_free(struct vec *v)
{
	free(v->items);
}
""",
    "src/fib.c": """#include "fib.h"
long fib(int n)
{
	long a = 0, b = 1;
	while (n-- > 0) {
		long t = a + b;
		a = b;
		b = t;
	}
	return a;
}
""",
    "src/main.c": """#include <pthread.h>
#include <stdio.h>
#include "fib.h"
#include "vec.h"
static void *worker(void *arg)
{
	*(long *)arg = fib(50);
	return NULL;
}
int main(int argc, char **argv)
{
	struct vec v = {0};
	pthread_t t;
	long f50 = 0;
	for (int i = 1; i <= 100; i++)
		vec_push(&v, i);
	pthread_create(&t, NULL, worker, &f50);
	pthread_join(t, NULL);
	printf("sum=%ld fib50=%ld args=%d\\n", vec_sum(&v), f50, argc);
	vec_free(&v);
	return argv[1] ? 3 : 0;
}
""",
    "Makefile": """CC ?= cc
CFLAGS += -O2 -Wall -Wextra -Werror -Iinclude -MMD -MP
LDLIBS += -pthread
OBJS := $(patsubst src/%.c,obj/%.o,$(wildcard src/*.c))

bin/app: $(OBJS) | bin
\t$(CC) -o $@ $^ $(LDLIBS)

obj/%.o: src/%.c | obj
\t$(CC) $(CFLAGS) -c -o $@ $<

obj bin:
\tmkdir -p $@

-include $(OBJS:.o=.d)

.PHONY: clean
clean:
\trm -rf obj bin
""",
}


def _project(workdir):
    owner = os.stat(workdir)
    for rel, text in SOURCES.items():
        path = os.path.join(workdir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.chown(os.path.dirname(path), owner.st_uid, owner.st_gid)
        write_file(path, text)


def test_gcc_make_j2_in_volume(sandbox, workdir, runner):
    _project(workdir)
    r = check(sandbox("sh", "-c", "make -j2 && ./bin/app && (./bin/app x; echo status=$?)",
                      volumes={workdir: "/src"}, workdir="/src"))
    for obj in ("obj/vec.o", "obj/fib.o", "obj/main.o"):
        assert obj in r.stdout, r.stdout
    assert "sum=5050 fib50=12586269025 args=1\n" in r.stdout
    assert "sum=5050 fib50=12586269025 args=2\nstatus=3\n" in r.stdout

    # The products are real files on the host, owned by whoever ran warden.
    app = os.path.join(workdir, "bin", "app")
    assert os.access(app, os.X_OK)
    assert owners(workdir) == {expected_owner(runner)}
    host = subprocess.run([app], capture_output=True, text=True, timeout=30)
    assert host.stdout == "sum=5050 fib50=12586269025 args=1\n"

    # An incremental rebuild sees the timestamps the first build left.
    r = check(sandbox("sh", "-c", "make -j2; touch src/fib.c; make -j2",
                      volumes={workdir: "/src"}, workdir="/src"))
    assert "make: 'bin/app' is up to date." in r.stdout, r.stdout
    assert "-c -o obj/fib.o" in r.stdout, r.stdout
    assert "-c -o obj/vec.o" not in r.stdout and "-c -o obj/main.o" not in r.stdout, r.stdout


def test_gcc_in_tmp_and_home(sandbox):
    """Scratch builds in the private /tmp and $HOME: compile, link, run, and a shared
    library loaded with dlopen."""
    script = r"""
set -e
cd "$HOME"
cat > lib.c <<'EOF'
int answer(void) { return 42; }
EOF
cat > main.c <<'EOF'
#include <dlfcn.h>
#include <stdio.h>
int main(void)
{
	void *h = dlopen("/tmp/libanswer.so", RTLD_NOW);
	if (!h) { puts(dlerror()); return 1; }
	int (*f)(void) = (int (*)(void))dlsym(h, "answer");
	printf("answer=%d\n", f());
	return 0;
}
EOF
gcc -shared -fPIC -o /tmp/libanswer.so lib.c
gcc -o /tmp/main main.c -ldl
/tmp/main
echo 'int main(void){return 0;}' | gcc -x c -o /var/tmp/empty - && /var/tmp/empty && echo var-tmp-ok
"""
    r = check(sandbox("sh", "-c", script))
    assert r.stdout == "answer=42\nvar-tmp-ok\n"

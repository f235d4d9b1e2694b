/* test_files.c: files inside a root (src/lib/files.c), with a temporary directory as the
 * root: planted links and ".." stay inside it, FIFOs do not block, recursive deletion
 * never follows a link. The identity switch is not exercised here (as_user is off);
 * tests/integration/test_daemon.py covers it with real sandboxes.
 */
#include "unit.h"
#include "../../src/lib/files.h"

#include <fcntl.h>

struct fixture {
	char base[64];    /* holds root/ and outside/ */
	char root[96];    /* the "sandbox" root */
	char outside[96]; /* a host directory that must stay untouched */
	char secret[128]; /* outside/secret */
	struct warden_root r;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->base, "/tmp/warden-files-XXXXXX");
	assert_non_null(mkdtemp(f->base));
	snprintf(f->root, sizeof(f->root), "%s/root", f->base);
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->base);
	snprintf(f->secret, sizeof(f->secret), "%s/secret", f->outside);
	assert_int_equal(mkdir(f->root, 0755), 0);
	assert_int_equal(mkdir(f->outside, 0755), 0);
	assert_int_equal(write_file_at(AT_FDCWD, f->secret, ""), -ENOENT); /* no create */
	int fd = open(f->secret, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "secret\n", 7), 7);
	close(fd);
	f->r = (struct warden_root){.fd = open(f->root, O_PATH | O_DIRECTORY | O_CLOEXEC),
	                            .uid = getuid(),
	                            .gid = getgid(),
	                            .as_user = false};
	assert_true(f->r.fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	warden_root_close(&f->r);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->base);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static char *at(struct fixture *f, const char *rel)
{
	static char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s%s", f->root, rel);
	return buf;
}

/* r, the result of a call given &e: it failed with errnum; *e is freed and reset. */
static void expect_errno(int r, struct warden_error **e, int errnum)
{
	assert_int_equal(r, -1);
	assert_non_null(*e);
	assert_int_equal((*e)->errnum, errnum);
	warden_error_free(*e);
	*e = NULL;
}

static char *read_back(struct fixture *f, const char *path)
{
	struct warden_error *e = NULL;
	struct warden_file_info fi;
	int fd = warden_file_open_read(&f->r, path, &fi, &e);
	assert_true(fd >= 0);
	assert_null(e);
	char *buf = xcalloc(1, fi.size + 1);
	assert_int_equal(read(fd, buf, fi.size + 1), (ssize_t)fi.size);
	close(fd);
	return buf;
}

static void test_path_check(void **state)
{
	(void)state;
	struct warden_error *e = NULL;
	assert_int_equal(warden_path_check("/tmp/x", 6, &e), 0);
	expect_errno(warden_path_check("tmp/x", 5, &e), &e, EINVAL);
	expect_errno(warden_path_check("/tmp\0x", 6, &e), &e, EINVAL);
	char *long_path = xmalloc(PATH_MAX + 2);
	memset(long_path, 'a', PATH_MAX + 1);
	long_path[0] = '/';
	long_path[PATH_MAX + 1] = '\0';
	expect_errno(warden_path_check(long_path, PATH_MAX + 1, &e), &e, ENAMETOOLONG);
	free(long_path);
}

static void test_write_read_stat(void **state)
{
	struct fixture *f = *state;
	struct warden_error *e = NULL;
	struct warden_file_info fi;
	assert_int_equal(warden_file_write(&f->r, "/hello", "hello", 5, 0600, &fi, &e), 0);
	assert_int_equal(fi.type, WARDEN_FILE_REGULAR);
	assert_int_equal(fi.size, 5);
	assert_int_equal(fi.mode, 0600);
	char *s = read_back(f, "/hello");
	assert_string_equal(s, "hello");
	free(s);
	/* Replacing truncates; without a mode the file keeps its own. */
	assert_int_equal(warden_file_write(&f->r, "/hello", "hi", 2, -1, &fi, &e), 0);
	assert_int_equal(fi.size, 2);
	assert_int_equal(fi.mode, 0600);
	assert_int_equal(warden_file_write(&f->r, "/new", "", 0, -1, &fi, &e), 0);
	assert_int_equal(fi.mode, 0644);
	assert_int_equal(warden_file_stat(&f->r, "/", &fi, &e), 0);
	assert_int_equal(fi.type, WARDEN_FILE_DIR);
	expect_errno(warden_file_stat(&f->r, "/missing", &fi, &e), &e, ENOENT);
	expect_errno(warden_file_open_read(&f->r, "/", &fi, &e), &e, EISDIR);
	expect_errno(warden_file_write(&f->r, "/missing/x", "", 0, -1, &fi, &e), &e, ENOENT);
	expect_errno(warden_file_write(&f->r, "/hello/x", "", 0, -1, &fi, &e), &e, ENOTDIR);
	expect_errno(warden_file_write(&f->r, "/", "", 0, -1, &fi, &e), &e, EINVAL);
}

static void test_absolute_link_stays_inside(void **state)
{
	struct fixture *f = *state;
	struct warden_error *e = NULL;
	struct warden_file_info fi;
	assert_int_equal(symlink(f->secret, at(f, "/x")), 0);
	/* Outside first: the host's own walk follows it to the secret. */
	char *s = NULL;
	size_t n = 0;
	assert_int_equal(read_small_file(at(f, "/x"), 100, "x", &s, &n, &e), 0);
	assert_string_equal(s, "secret\n");
	free(s);
	/* Inside, the same absolute path does not exist. */
	expect_errno(warden_file_open_read(&f->r, "/x", &fi, &e), &e, ENOENT);
	/* Not written through; the link itself is described, and deleted, not its target. */
	expect_errno(warden_file_write(&f->r, "/x", "pwned", 5, -1, &fi, &e), &e, ELOOP);
	assert_int_equal(warden_file_stat(&f->r, "/x", &fi, &e), 0);
	assert_int_equal(fi.type, WARDEN_FILE_SYMLINK);
	assert_int_equal(warden_file_delete(&f->r, "/x", false, &e), 0);
	assert_int_equal(access(f->secret, F_OK), 0);
	/* A link to a place inside is followed, inside. */
	assert_int_equal(warden_file_write(&f->r, "/real", "inside", 6, -1, &fi, &e), 0);
	assert_int_equal(symlink("/real", at(f, "/alias")), 0);
	s = read_back(f, "/alias");
	assert_string_equal(s, "inside");
	free(s);
}

static void test_dotdot_link_stays_inside(void **state)
{
	struct fixture *f = *state;
	struct warden_error *e = NULL;
	struct warden_file_info fi;
	assert_int_equal(symlink("../../../../../..", at(f, "/up")), 0);
	char via[PATH_MAX];
	snprintf(via, sizeof(via), "/up%s", f->secret);
	expect_errno(warden_file_open_read(&f->r, via, &fi, &e), &e, ENOENT);
	snprintf(via, sizeof(via), "/..%s", f->secret);
	expect_errno(warden_file_open_read(&f->r, via, &fi, &e), &e, ENOENT);
	/* Written through "/up/..", the file lands in the root. */
	assert_int_equal(warden_file_write(&f->r, "/up/../landed", "x", 1, -1, &fi, &e), 0);
	assert_int_equal(access(at(f, "/landed"), F_OK), 0);
	snprintf(via, sizeof(via), "/up%s", f->secret);
	expect_errno(warden_file_delete(&f->r, via, false, &e), &e, ENOENT);
	assert_int_equal(access(f->secret, F_OK), 0);
}

static void test_fifo_does_not_block(void **state)
{
	struct fixture *f = *state;
	struct warden_error *e = NULL;
	struct warden_file_info fi;
	assert_int_equal(mkfifo(at(f, "/fifo"), 0666), 0);
	expect_errno(warden_file_open_read(&f->r, "/fifo", &fi, &e), &e, EINVAL);
	int r = warden_file_write(&f->r, "/fifo", "x", 1, -1, &fi, &e);
	assert_int_equal(r, -1);
	assert_true(e->errnum == ENXIO || e->errnum == EINVAL);
	warden_error_free(e);
}

static int count(const char *name, const struct warden_file_info *fi, void *ctx)
{
	(void)fi;
	assert_true(streq(name, "out") || streq(name, "file"));
	++*(size_t *)ctx;
	return 0;
}

static void test_mkdir_list_delete(void **state)
{
	struct fixture *f = *state;
	struct warden_error *e = NULL;
	struct warden_file_info fi;
	assert_int_equal(warden_file_mkdir(&f->r, "/a/b/c", -1, true, &fi, &e), 0);
	assert_int_equal(fi.type, WARDEN_FILE_DIR);
	assert_int_equal(fi.mode, 0755);
	assert_int_equal(warden_file_mkdir(&f->r, "/a/b/c", 0700, true, &fi, &e), 0);
	expect_errno(warden_file_mkdir(&f->r, "/a", -1, false, &fi, &e), &e, EEXIST);
	expect_errno(warden_file_mkdir(&f->r, "/x/y", -1, false, &fi, &e), &e, ENOENT);
	/* A link in the prefix is followed inside the root. */
	assert_int_equal(symlink("/a/b", at(f, "/ab")), 0);
	assert_int_equal(warden_file_mkdir(&f->r, "/ab/d", 0711, false, &fi, &e), 0);
	assert_int_equal(fi.mode, 0711);
	struct stat st;
	assert_int_equal(stat(at(f, "/a/b/d"), &st), 0);

	/* A link to the outside directory inside the tree: deleting the tree removes the
	 * link, never what it points to. */
	assert_int_equal(symlink(f->outside, at(f, "/a/b/c/out")), 0);
	assert_int_equal(warden_file_write(&f->r, "/a/b/c/file", "1", 1, -1, &fi, &e), 0);
	size_t n = 0;
	bool truncated = true;
	assert_int_equal(warden_file_list(&f->r, "/a/b/c", 8, count, &n, &truncated, &e), 0);
	assert_int_equal(n, 2);
	assert_false(truncated);
	n = 0;
	assert_int_equal(warden_file_list(&f->r, "/a/b/c", 1, count, &n, &truncated, &e), 0);
	assert_true(truncated);
	expect_errno(warden_file_list(&f->r, "/a/b/c/file", 8, count, &n, &truncated, &e), &e,
	             ENOTDIR);

	expect_errno(warden_file_delete(&f->r, "/a", false, &e), &e, ENOTEMPTY);
	assert_int_equal(warden_file_delete(&f->r, "/a", true, &e), 0);
	assert_int_equal(access(at(f, "/a"), F_OK), -1);
	assert_int_equal(access(f->secret, F_OK), 0);
	/* A link to a directory, deleted recursively: the link goes, the directory stays. */
	assert_int_equal(symlink(f->outside, at(f, "/outlink")), 0);
	assert_int_equal(warden_file_delete(&f->r, "/outlink", true, &e), 0);
	assert_int_equal(access(f->secret, F_OK), 0);
	expect_errno(warden_file_delete(&f->r, "/", true, &e), &e, EINVAL);
	expect_errno(warden_file_delete(&f->r, "/missing", false, &e), &e, ENOENT);
}

static void test_root_adopt(void **state)
{
	(void)state;
	struct warden_error *e = NULL;
	struct warden_root r;
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(warden_root_adopt(fd, getuid(), getgid(), &r, &e), 0);
	assert_int_equal(r.fd, fd);
	assert_int_equal(r.as_user, geteuid() == 0);
	struct warden_file_info fi;
	assert_int_equal(warden_file_stat(&r, "/proc", &fi, NULL), -1); /* procfs: refused */
	warden_root_close(&r);
	assert_int_equal(r.fd, -1);
	/* Not a directory: refused, and the descriptor is closed all the same. */
	fd = open("/dev/null", O_PATH | O_CLOEXEC);
	assert_true(fd >= 0);
	expect_errno(warden_root_adopt(fd, 0, 0, &r, &e), &e, ENOTDIR);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_check),
	    cmocka_unit_test_setup_teardown(test_write_read_stat, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_absolute_link_stays_inside, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dotdot_link_stays_inside, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fifo_does_not_block, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mkdir_list_delete, setup, teardown),
	    cmocka_unit_test(test_root_adopt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

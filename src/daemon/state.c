/* state.c: wardend's state in SQLite (WAL): the sandboxes it started and the log of their
 * execs. Every change is committed before the reply that reports it is sent, so a daemon
 * killed with SIGKILL loses nothing it has answered; a change is in the OS's cache then,
 * which survives the process (synchronous=NORMAL: a power loss may take the last ones).
 */
#define _GNU_SOURCE
#include "wardend.h"

static sqlite3 *db;

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS sandboxes ("
    " id TEXT PRIMARY KEY,"
    " policy TEXT NOT NULL,"
    " policy_text TEXT,"      /* inline policies: the YAML */
    " policy_hash TEXT,"      /* SHA-256 of the policy text */
    " control TEXT NOT NULL," /* the supervisor's control socket */
    " supervisor_pid INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL," /* 0 while waiting in a pool */
    " labels TEXT NOT NULL DEFAULT '{}',"
    " owner TEXT NOT NULL DEFAULT '',"
    " state TEXT NOT NULL DEFAULT 'running',"
    " from_pool INTEGER NOT NULL DEFAULT 0,"
    " pooled INTEGER NOT NULL DEFAULT 0,"     /* waiting in a pool, not handed out */
    " destroyed INTEGER NOT NULL DEFAULT 0);" /* destroy sent, clean-up not finished */
    "CREATE TABLE IF NOT EXISTS execs ("
    " sandbox TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
    " exec_id INTEGER NOT NULL,"
    " cmd TEXT NOT NULL,"
    " started_at INTEGER NOT NULL,"
    " ended_at INTEGER,"
    " exit_code INTEGER,"
    " timed_out INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (sandbox, exec_id));";

const char *state_error(void)
{
	return db ? sqlite3_errmsg(db) : "no database";
}

int state_open(const char *path, struct warden_error **err)
{
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK)
		return warden_error_set(err, 0, "state database %s: %s", path, state_error());
	sqlite3_busy_timeout(db, 2000);
	char *msg = NULL;
	if (sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		warden_error_set(err, 0, "state database %s: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

void state_close(void)
{
	if (db)
		sqlite3_close(db);
	db = NULL;
}

/* Run one statement with bound values: "s" text (NULL allowed), "i" int64. */
static int run(const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		if (types[i] == 's') {
			const char *s = va_arg(ap, const char *);
			sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT);
		} else {
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
		}
	}
	va_end(ap);
	int r = sqlite3_step(st);
	sqlite3_finalize(st);
	return r == SQLITE_DONE || r == SQLITE_ROW ? 0 : -1;
}

int state_put(const struct sandbox *sb, const char *policy_text, const char *policy_hash)
{
	_cleanup_free_ char *labels = json_dumps(sb->labels, JSON_COMPACT | JSON_SORT_KEYS);
	return run("INSERT INTO sandboxes (id, policy, policy_text, policy_hash, control,"
	           " supervisor_pid, created_at, expires_at, labels, owner, state, from_pool,"
	           " pooled) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
	           " ON CONFLICT(id) DO UPDATE SET created_at = ?7, expires_at = ?8,"
	           " labels = ?9, owner = ?10, state = ?11, from_pool = ?12, pooled = ?13",
	           "sssssiiisssii", sb->id, sb->policy, policy_text, policy_hash, sb->control,
	           (int64_t)sb->supervisor_pid, sb->created_at, sb->expires_at,
	           labels ? labels : "{}", sb->owner, sb->paused ? "paused" : "running",
	           (int64_t)sb->from_pool, (int64_t)(sb->pool != NULL));
}

int state_set_paused(const char *id, bool paused)
{
	return run("UPDATE sandboxes SET state = ?2 WHERE id = ?1", "ss", id,
	           paused ? "paused" : "running");
}

int state_mark_destroyed(const char *id)
{
	return run("UPDATE sandboxes SET destroyed = 1 WHERE id = ?1", "s", id);
}

int state_delete(const char *id)
{
	return run("DELETE FROM sandboxes WHERE id = ?1", "s", id);
}

int state_each(void (*fn)(json_t *row, void *ctx), void *ctx)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
	                       "SELECT id, policy, control, supervisor_pid, created_at, expires_at,"
	                       " labels, owner, state, from_pool, pooled, destroyed FROM sandboxes"
	                       " ORDER BY created_at",
	                       -1, &st, NULL) != SQLITE_OK)
		return -1;
	json_t *rows = json_array();
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *labels = json_loads((const char *)sqlite3_column_text(st, 6), 0, NULL);
		json_array_append_new(
		    rows,
		    json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:s, s:s, s:b, s:b, s:b}", "id",
		              sqlite3_column_text(st, 0), "policy", sqlite3_column_text(st, 1),
		              "control", sqlite3_column_text(st, 2), "supervisor_pid",
		              (json_int_t)sqlite3_column_int64(st, 3), "created_at",
		              (json_int_t)sqlite3_column_int64(st, 4), "expires_at",
		              (json_int_t)sqlite3_column_int64(st, 5), "labels",
		              json_is_object(labels) ? labels : json_object(), "owner",
		              sqlite3_column_text(st, 7), "state", sqlite3_column_text(st, 8),
		              "from_pool", sqlite3_column_int(st, 9), "pooled",
		              sqlite3_column_int(st, 10), "destroyed", sqlite3_column_int(st, 11)));
		if (labels && !json_is_object(labels))
			json_decref(labels);
	}
	sqlite3_finalize(st);
	/* Called after the statement is done: fn may write. */
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		if (row)
			fn(row, ctx);
	}
	json_decref(rows);
	return 0;
}

int state_exec_start(const char *id, uint64_t exec_id, json_t *cmd, int64_t started_at)
{
	_cleanup_free_ char *text = json_dumps(cmd, JSON_COMPACT);
	return run("INSERT OR REPLACE INTO execs (sandbox, exec_id, cmd, started_at)"
	           " VALUES (?1, ?2, ?3, ?4)",
	           "sisi", id, (int64_t)exec_id, text ? text : "[]", started_at);
}

int state_exec_end(const char *id, uint64_t exec_id, int exit_code, bool timed_out,
                   int64_t ended_at)
{
	return run("UPDATE execs SET exit_code = ?3, timed_out = ?4, ended_at = ?5"
	           " WHERE sandbox = ?1 AND exec_id = ?2",
	           "siiii", id, (int64_t)exec_id, (int64_t)exit_code, (int64_t)timed_out, ended_at);
}

json_t *state_exec_list(const char *id)
{
	sqlite3_stmt *st;
	json_t *list = json_array();
	if (sqlite3_prepare_v2(db,
	                       "SELECT exec_id, cmd, exit_code, started_at, ended_at, timed_out"
	                       " FROM execs WHERE sandbox = ?1 ORDER BY started_at, exec_id",
	                       -1, &st, NULL) != SQLITE_OK)
		return list;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char a[32], b[32];
		json_t *cmd = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
		bool ended = sqlite3_column_type(st, 4) != SQLITE_NULL;
		json_array_append_new(
		    list,
		    json_pack(
		        "{s:I, s:o, s:o, s:s, s:o, s:b}", "exec_id",
		        (json_int_t)sqlite3_column_int64(st, 0), "cmd", cmd ? cmd : json_array(),
		        "exit_code", ended ? json_integer(sqlite3_column_int(st, 2)) : json_null(),
		        "started_at", rfc3339(sqlite3_column_int64(st, 3), a, sizeof(a)),
		        "ended_at",
		        ended ? json_string(rfc3339(sqlite3_column_int64(st, 4), b, sizeof(b)))
		              : json_null(),
		        "timed_out", sqlite3_column_int(st, 5)));
	}
	sqlite3_finalize(st);
	return list;
}

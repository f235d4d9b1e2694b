# warden: the two-command quick start is `make demo` and `make test` (as root on Debian 12).
# Both install what they need from Debian first (scripts/setup.sh, idempotent).

BUILD ?= build
PYTEST ?= /usr/bin/python3 -m pytest

.PHONY: all setup build test unit integration escape workload vm-quick test-vm fuzz format-check \
	fmt bench demo clean

all: build

setup:
	@./scripts/setup.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: setup $(BUILD)/build.ninja
	ninja -C $(BUILD)

test: build format-check unit fuzz integration escape workload vm-quick

format-check:
	@./scripts/format.sh --check

fmt:
	@./scripts/format.sh

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

integration: build
	$(PYTEST) -q tests/integration

escape: build
	$(PYTEST) -q tests/escape

workload: build
	$(PYTEST) -q tests/workload

# The engine's suites again with every sandbox a microVM (--isolation vm: tests/conftest.py,
# docs/vm.md), one pytest run each (their conftest modules share a name). Under TCG each
# guest boots in seconds: all of them (about 20 minutes here, more when the default
# policy's root image must be built) are test-vm; `make test` runs vm-quick (about 8
# minutes): warden run's own behaviour, the escape attempts on host processes and
# everyday shell work.
VM_SUITES = tests/integration/test_run.py tests/escape tests/workload
VM_QUICK = tests/integration/test_run.py tests/escape/test_processes.py \
	tests/workload/test_shell.py

test-vm: build
	@status=0; for t in $(VM_SUITES); do $(PYTEST) -q --isolation vm $$t || status=1; done; \
	exit $$status

vm-quick: build
	@status=0; for t in $(VM_QUICK); do $(PYTEST) -q --isolation vm $$t || status=1; done; \
	exit $$status

fuzz: build
	./tests/fuzz/run.sh $(BUILD)

bench: build
	/usr/bin/python3 bench/run.py --build $(BUILD)

demo: build
	./demo/run.sh $(BUILD)

clean:
	rm -rf $(BUILD)

# Turbine: `make serve` and `make test` do all the set-up on a fresh Debian 12 machine.
BUILD_DIR ?= build
JOBS ?= 2
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: deps configure build test test-asan bench serve clean

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 900

# Every test again under AddressSanitizer + UndefinedBehaviorSanitizer (a second, Debug build in
# $(ASAN_BUILD_DIR); tests/lsan.supp names the one deliberate leak). Not part of `make test`.
ASAN_BUILD_DIR ?= build-asan
test-asan:
	@$(MAKE) --no-print-directory build BUILD_DIR=$(ASAN_BUILD_DIR) CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Debug -DTURBINE_SANITIZE=ON"
	@cd $(ASAN_BUILD_DIR) && LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS) --timeout 1800

bench: build
	@bash bench/run.sh $(BUILD_DIR)

serve: build
	@$(BUILD_DIR)/bin/turbine serve $(ARGS)

clean:
	rm -rf $(BUILD_DIR)

// Template: a parsed Jinja2 template that renders like Python Jinja2 3.1 in the environment that
// Hugging Face transformers uses for chat templates:
//   ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
//                                 extensions=[jinja2.ext.loopcontrols])
// with globals raise_exception(msg), strftime_now(fmt), range, namespace, dict, and the
// `tojson` filter redefined as json.dumps(x, ensure_ascii=False, ...).
// A Template is immutable after parse() and may be rendered from many threads at once.
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "model/jinja/ast.h"
#include "model/jinja/interpreter.h"
#include "model/jinja/value.h"

namespace turbine::model::jinja {

struct RenderOptions {
  RenderLimits limits;
  // The broken-down local time that strftime_now() formats. Default: the current local time.
  std::function<std::tm()> now;
};

class Template {
 public:
  // Errors: InvalidArgument "line N: <what>" for a syntax error.
  static Result<Template> parse(const std::string& source);

  // `context` must be a dict of top-level variables. Errors (all InvalidArgument):
  //  - the template called raise_exception(msg): the message is exactly msg;
  //  - any other runtime error: "line N: <what>" (undefined used, type error, a limit hit).
  Result<std::string> render(const Value& context, const RenderOptions& options = {}) const;

 private:
  explicit Template(std::shared_ptr<const StmtList> body) : body_(std::move(body)) {}
  std::shared_ptr<const StmtList> body_;
};

}  // namespace turbine::model::jinja

#include "tests/support/fake_supporter_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/http_server.h"
#include "tests/support/drain.h"

namespace plyr::testing {

FakeSupporterServer::FakeSupporterServer()
    : runtime_(std::make_unique<Runtime>(RuntimeOptions{1, ThreadModel::kPerCore})),
      metrics_(std::make_unique<MetricsRegistry>()) {
  Router router;
  router.Add(http::verb::get, "/xrpc/com.atprotofans.validateSupporter",
             [this](Request& request) -> asio::awaitable<Response> {
               ++requests_;
               Mode mode;
               std::chrono::milliseconds delay;
               bool valid;
               const std::string viewer = request.Query("supporter").value_or("");
               const std::string subject = request.Query("subject").value_or("");
               const std::string signer = request.Query("signer").value_or("");
               {
                 std::lock_guard lock(mutex_);
                 mode = mode_;
                 delay = delay_;
                 last_query_ = std::string(request.url().encoded_query());
                 valid = supporters_.contains({viewer, subject}) && signer == subject;
               }
               if (mode == Mode::kSlow) {
                 asio::steady_timer timer(co_await asio::this_coro::executor, delay);
                 co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
               }
               if (mode == Mode::kServerError) {
                 co_return ErrorResponse(http::status::internal_server_error, "InternalServerError", "boom");
               }
               if (mode == Mode::kGarbage) {
                 Response r;
                 r.header.result(http::status::ok);
                 r.header.set(http::field::content_type, "application/json");
                 r.body = "<html>not json";
                 co_return r;
               }
               if (viewer.empty() || subject.empty()) {
                 co_return ErrorResponse(http::status::bad_request, "InvalidRequest", "missing parameters");
               }
               co_return JsonResponse(http::status::ok, json::object{{"valid", valid}});
             });
  HttpServerOptions options;
  options.service = "fake-atprotofans";
  options.access_log = false;
  auto server = HttpServer::Create(*runtime_, {asio::ip::make_address("127.0.0.1"), 0}, std::move(router), options,
                                   *metrics_);
  server_ = std::move(server.value());
  server_->Start();
  thread_ = std::thread([this] { runtime_->Run(); });
}

FakeSupporterServer::~FakeSupporterServer() {
  DrainAndStop(*server_, *runtime_);
  thread_.join();
}

std::string FakeSupporterServer::url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

void FakeSupporterServer::AddSupporter(const std::string& viewer, const std::string& artist) {
  std::lock_guard lock(mutex_);
  supporters_.insert({viewer, artist});
}

void FakeSupporterServer::SetMode(Mode mode, std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex_);
  mode_ = mode;
  delay_ = delay;
}

std::string FakeSupporterServer::last_query() const {
  std::lock_guard lock(mutex_);
  return last_query_;
}

}  // namespace plyr::testing

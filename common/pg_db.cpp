#include "common/pg_db.h"

#include <libpq-fe.h>

#include <charconv>
#include <cstring>

namespace plyr {

namespace {

// A failed statement or connection as a Status, coded by SQLSTATE (see the header).
Status PgFailure(std::string_view what, const char* sqlstate, std::string_view message) {
  std::string words(message);
  while (!words.empty() && (words.back() == '\n' || words.back() == ' ')) words.pop_back();
  const std::string_view state = sqlstate == nullptr ? std::string_view() : std::string_view(sqlstate);
  StatusCode code = StatusCode::kInternal;
  if (state == "23505") {
    code = StatusCode::kAlreadyExists;
  } else if (state.starts_with("08") || state.starts_with("57P") || state == "40001" || state == "40P01" ||
             state.empty()) {
    // No SQLSTATE at all: the connection itself failed.
    code = StatusCode::kUnavailable;
  } else if (state.starts_with("53")) {
    code = StatusCode::kResourceExhausted;
  }
  return Status(code, std::string(what) + ": " + words + (state.empty() ? "" : " (SQLSTATE " + std::string(state) + ")"));
}

bool ConnectionOk(pg_conn* conn) { return conn != nullptr && PQstatus(conn) == CONNECTION_OK; }

}  // namespace

void PgResult::Deleter::operator()(pg_result* result) const { PQclear(result); }
void PgConnection::Deleter::operator()(pg_conn* conn) const { PQfinish(conn); }

int PgResult::rows() const { return result_ ? PQntuples(result_.get()) : 0; }
int PgResult::columns() const { return result_ ? PQnfields(result_.get()) : 0; }
bool PgResult::IsNull(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }

std::string_view PgResult::Text(int row, int column) const {
  return std::string_view(PQgetvalue(result_.get(), row, column),
                          static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
}

std::int64_t PgResult::Int(int row, int column) const {
  const std::string_view text = Text(row, column);
  std::int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

std::string PgResult::Bytes(int row, int column) const {
  const std::string_view text = Text(row, column);
  if (text.size() < 2 || text[0] != '\\' || text[1] != 'x') return {};
  const auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  std::string out((text.size() - 2) / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(nibble(text[2 + 2 * i]) << 4 | nibble(text[3 + 2 * i]));
  }
  return out;
}

std::string PgBytea(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

PgParams PgTextParams(const std::vector<SqlValue>& values) {
  PgParams out;
  out.reserve(values.size());
  for (const auto& value : values) {
    if (const auto* i = std::get_if<std::int64_t>(&value)) {
      out.emplace_back(std::to_string(*i));
    } else if (const auto* text = std::get_if<std::string>(&value)) {
      out.emplace_back(*text);
    } else if (const auto* blob = std::get_if<SqlBlob>(&value)) {
      out.emplace_back(PgBytea(blob->bytes));
    } else {
      out.emplace_back(std::nullopt);
    }
  }
  return out;
}

StatusOr<PgResult> PgConnection::Exec(std::string_view sql, const PgParams& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  const std::string statement(sql);
  PgResult result;
  result.result_.reset(PQexecParams(conn_.get(), statement.c_str(), static_cast<int>(values.size()), nullptr,
                                    values.data(), nullptr, nullptr, 0));
  if (!result.result_) return PgFailure("PostgreSQL", nullptr, PQerrorMessage(conn_.get()));
  const ExecStatusType state = PQresultStatus(result.result_.get());
  if (state != PGRES_COMMAND_OK && state != PGRES_TUPLES_OK) {
    return PgFailure("PostgreSQL", PQresultErrorField(result.result_.get(), PG_DIAG_SQLSTATE),
                     PQresultErrorMessage(result.result_.get()));
  }
  const char* affected = PQcmdTuples(result.result_.get());
  if (affected != nullptr && *affected != '\0') {
    std::from_chars(affected, affected + std::strlen(affected), result.affected_);
  }
  return result;
}

StatusOr<std::unique_ptr<PgDb>> PgDb::Open(const std::string& url, int connections,
                                           std::chrono::milliseconds statement_timeout) {
  if (connections < 1 || connections > 64) {
    return Status(StatusCode::kInvalidArgument, "a PostgreSQL pool holds 1 to 64 connections");
  }
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &parse_error);
  if (options == nullptr) {
    // libpq's message quotes the URL, which may hold a password: it is not passed on.
    PQfreemem(parse_error);
    return Status(StatusCode::kInvalidArgument,
                  "database.url is not a PostgreSQL URL (postgres://user:password@host:port/database)");
  }
  PQconninfoFree(options);
  std::unique_ptr<PgDb> db(new PgDb());
  db->url_ = url;
  db->statement_timeout_ = statement_timeout;
  for (int i = 0; i < connections; ++i) {
    auto connection = std::make_unique<PgConnection>();
    connection->conn_.reset(PQconnectdb(url.c_str()));
    if (!ConnectionOk(connection->conn_.get())) {
      return PgFailure("cannot connect to PostgreSQL", nullptr, PQerrorMessage(connection->conn_.get()));
    }
    if (auto set = connection->Exec("SELECT set_config('statement_timeout', $1, false)",
                                    {std::to_string(statement_timeout.count())});
        !set.ok()) {
      return set.status();
    }
    db->free_.push_back(connection.get());
    db->pool_.push_back(std::move(connection));
  }
  return db;
}

PgDb::~PgDb() = default;

StatusOr<PgConnection*> PgDb::Acquire() {
  PgConnection* connection = nullptr;
  {
    std::unique_lock lock(mutex_);
    if (!freed_.wait_for(lock, statement_timeout_, [this] { return !free_.empty(); })) {
      return Status(StatusCode::kResourceExhausted, "every PostgreSQL connection stayed busy");
    }
    connection = free_.back();
    free_.pop_back();
  }
  // A session the server ended while it sat idle (a restart, an idle timeout) has its goodbye
  // and end-of-file waiting unread: reading what is there (libpq does not block) shows it, so
  // the statement goes to a fresh session instead of failing.
  // Twice: the first read takes the server's last message, the second meets the end of file.
  for (int i = 0; i < 2 && ConnectionOk(connection->conn_.get()); ++i) PQconsumeInput(connection->conn_.get());
  if (!ConnectionOk(connection->conn_.get())) {
    // The server restarted or the network dropped the session: connect again.
    PQreset(connection->conn_.get());
    if (!ConnectionOk(connection->conn_.get())) {
      Status failed = PgFailure("cannot reconnect to PostgreSQL", nullptr, PQerrorMessage(connection->conn_.get()));
      Release(connection);
      return failed;
    }
    if (auto set = connection->Exec("SELECT set_config('statement_timeout', $1, false)",
                                    {std::to_string(statement_timeout_.count())});
        !set.ok()) {
      Release(connection);
      return set.status();
    }
  }
  return connection;
}

void PgDb::Release(PgConnection* connection) {
  {
    std::lock_guard lock(mutex_);
    free_.push_back(connection);
  }
  freed_.notify_one();
}

StatusOr<PgResult> PgDb::Exec(std::string_view sql, const PgParams& params) {
  auto connection = Acquire();
  if (!connection.ok()) return connection.status();
  auto result = (*connection)->Exec(sql, params);
  Release(*connection);
  return result;
}

Status PgDb::Transaction(const std::function<Status(PgConnection&)>& work) {
  auto connection = Acquire();
  if (!connection.ok()) return connection.status();
  PgConnection& c = **connection;
  Status outcome;
  if (auto begun = c.Exec("BEGIN"); !begun.ok()) {
    outcome = begun.status();
  } else {
    outcome = work(c);
    if (outcome.ok()) {
      if (auto committed = c.Exec("COMMIT"); !committed.ok()) outcome = committed.status();
    }
    // After a failed statement (or a failed COMMIT) the transaction is aborted: end it.
    if (!outcome.ok()) (void)c.Exec("ROLLBACK");
  }
  Release(&c);
  return outcome;
}

}  // namespace plyr

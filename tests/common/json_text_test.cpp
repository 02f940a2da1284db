#include "common/json_text.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace plyr {
namespace {

namespace json = boost::json;

TEST(JsonTextTest, DoublesReadAsPeopleWriteThem) {
  EXPECT_EQ(ToJsonText(json::value(205.22)), "205.22");
  EXPECT_EQ(ToJsonText(json::value(0.5)), "0.5");
  EXPECT_EQ(ToJsonText(json::value(-1.25)), "-1.25");
  EXPECT_EQ(ToJsonText(json::value(205.0)), "205.0");
  EXPECT_EQ(ToJsonText(json::value(0.0)), "0.0");
  EXPECT_EQ(ToJsonText(json::value(1e21)), "1e+21");
  EXPECT_EQ(ToJsonText(json::value(std::numeric_limits<double>::quiet_NaN())), "null");
  EXPECT_EQ(ToJsonText(json::value(std::numeric_limits<double>::infinity())), "null");
  EXPECT_EQ(ToJsonText(json::object{{"duration_s", 60.048}, {"items", 485}}), R"({"duration_s":60.048,"items":485})");
}

TEST(JsonTextTest, StringsAreEscapedAsBoostJsonEscapesThem) {
  const json::value text = json::string("quote \" backslash \\ newline \n tab \t bell \x07 del \x7f é ✓");
  // The double sends the value through our own writer (without one, Boost.JSON's text is used).
  EXPECT_EQ(ToJsonText(json::object{{"s", text}, {"d", 1.5}}), "{\"s\":" + json::serialize(text) + ",\"d\":1.5}");
  EXPECT_EQ(ToJsonText(json::object{{"a\"b", json::array{1, "x", nullptr, true, 0.25}}}),
            R"({"a\"b":[1,"x",null,true,0.25]})");
}

TEST(JsonTextTest, EveryValueReadsBackTheSame) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> unit(-1, 1);
  json::array values;
  for (int i = 0; i < 2000; ++i) {
    const double scale = std::pow(10.0, static_cast<double>(static_cast<int>(rng() % 40) - 20));
    values.push_back(unit(rng) * scale);
    values.push_back(static_cast<std::int64_t>(rng()));
    values.push_back(static_cast<std::uint64_t>(rng()));
  }
  values.push_back(std::numeric_limits<double>::max());
  values.push_back(std::numeric_limits<double>::denorm_min());
  values.push_back(json::object{{"nested", json::object{{"empty", json::array{}}, {"o", json::object{}}}}});
  const json::value back = json::parse(ToJsonText(values));
  ASSERT_TRUE(back.is_array());
  ASSERT_EQ(back.as_array().size(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::string text = ToJsonText(values[i]);
    if (values[i].is_double()) {
      // Boost.JSON 1.81's parser may land one unit in the last place off; strtod is exact.
      ASSERT_TRUE(back.as_array()[i].is_double()) << text;
      EXPECT_EQ(std::strtod(text.c_str(), nullptr), values[i].get_double()) << text;
    } else {
      ASSERT_EQ(back.as_array()[i], values[i]) << i << ": " << text;
    }
  }
}

}  // namespace
}  // namespace plyr

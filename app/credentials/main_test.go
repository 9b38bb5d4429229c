package credentials_test

import (
	"os"
	"testing"

	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

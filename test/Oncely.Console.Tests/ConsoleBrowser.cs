using System.Drawing;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;

namespace Oncely.Console.Tests;

/// <summary>
/// The Payments sample on Kestrel and one headless Chromium (Debian's <c>/usr/bin/chromium</c>, driven by
/// <c>/usr/bin/chromedriver</c>; run scripts/ensure-chromium.sh first), shared by the console tests. Selenium Manager is
/// never asked for a driver: both paths are given. Screenshots go to <c>.artifacts/test-results/operator-console/</c>.
/// </summary>
public sealed class ConsoleBrowser : IAsyncLifetime
{
    private const string ChromiumPath = "/usr/bin/chromium";
    private const string DriverPath = "/usr/bin/chromedriver";

    /// <summary>The browser's time zone (CET in winter, CEST in summer).</summary>
    public const string TimeZone = "Europe/Berlin";

    private readonly string _profile = Path.Combine(Path.GetTempPath(), "console-chromium-" + Guid.NewGuid().ToString("N")[..10]);

    public PaymentsServer Server { get; private set; } = null!;

    public ChromeDriver Driver { get; private set; } = null!;

    public string ScreenshotDirectory { get; } = FindScreenshotDirectory();

    public async Task InitializeAsync()
    {
        foreach (var path in new[] { ChromiumPath, DriverPath })
        {
            if (!File.Exists(path))
            {
                throw new InvalidOperationException($"{path} is missing: run scripts/ensure-chromium.sh (Debian packages chromium and chromium-driver).");
            }
        }

        Server = await PaymentsServer.StartAsync();
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(DriverPath)!, Path.GetFileName(DriverPath));
        service.HideCommandPromptWindow = true;
        service.SuppressInitialDiagnosticInformation = true;
        var options = new ChromeOptions { BinaryLocation = ChromiumPath };
        options.SetLoggingPreference(LogType.Browser, LogLevel.All); // script errors and CSP violations
        options.AddArguments(
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1280,800", "--lang=en-GB", $"--user-data-dir={_profile}");
        Driver = new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
        Driver.Manage().Timeouts().PageLoad = TimeSpan.FromSeconds(30);

        // The page shows times in the browser's zone: a zone other than the machine's UTC shows that it does.
        Driver.ExecuteCdpCommand("Emulation.setTimezoneOverride", new Dictionary<string, object?> { ["timezoneId"] = TimeZone });
        Directory.CreateDirectory(ScreenshotDirectory);
    }

    public async Task DisposeAsync()
    {
        Driver?.Quit();
        Driver?.Dispose();
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }

        try
        {
            Directory.Delete(_profile, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Opens the console afresh (signed out: the credential lives in the page's memory) at the given width.</summary>
    public void Open(int width = 1280, int height = 800)
    {
        Driver.Manage().Window.Size = new Size(width, height);
        Driver.Navigate().GoToUrl(new Uri(Server.Address, PaymentsServer.ConsolePath));

        // The window's size includes the browser's own frame: grow it until the page itself has width × height.
        var inner = (IReadOnlyCollection<object>)Driver.ExecuteScript("return [window.innerWidth, window.innerHeight];")!;
        var (innerWidth, innerHeight) = (Convert.ToInt32(inner.First(), System.Globalization.CultureInfo.InvariantCulture), Convert.ToInt32(inner.Last(), System.Globalization.CultureInfo.InvariantCulture));
        if (innerWidth != width || innerHeight != height)
        {
            Driver.Manage().Window.Size = new Size(2 * width - innerWidth, 2 * height - innerHeight);
        }

        Driver.ExecuteScript("sessionStorage.clear();");
        Driver.Navigate().Refresh();
        WaitUntil(() => Driver.FindElement(By.TagName("body")).GetAttribute("data-ready") == "true", "the console's script to start");
    }

    /// <summary>Signs in with the keyboard only: types the credential and presses Enter.</summary>
    public void SignIn(string credential)
    {
        var input = Driver.FindElement(By.Id("credential"));
        Assert.Equal(input, Driver.SwitchTo().ActiveElement());
        input.SendKeys(credential + Keys.Enter);
    }

    public IWebElement Element(string id) => Driver.FindElement(By.Id(id));

    public bool Visible(string id) => Element(id).Displayed;

    public void WaitUntil(Func<bool> condition, string what, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            try
            {
                if (condition())
                {
                    return;
                }
            }
            catch (WebDriverException)
            {
            }

            if (DateTime.UtcNow > deadline)
            {
                Screenshot("timeout-" + new string([.. what.Where(char.IsLetterOrDigit)]));
                throw new TimeoutException($"Waited {seconds} s for {what}. Page text: {Driver.FindElement(By.TagName("body")).Text}");
            }

            Thread.Sleep(100);
        }
    }

    /// <summary>Saves what the browser shows as {name}.png among the test results.</summary>
    public string Screenshot(string name, string? scrollTo = null, string block = "start")
    {
        if (scrollTo is not null)
        {
            Driver.ExecuteScript("document.getElementById(arguments[0]).scrollIntoView({block: arguments[1]});", scrollTo, block);
        }

        var path = Path.Combine(ScreenshotDirectory, name + ".png");
        Driver.GetScreenshot().SaveAsFile(path);
        return path;
    }

    /// <summary>The browser console's errors since the last call (script errors, CSP violations, failed loads).</summary>
    public IReadOnlyList<string> ConsoleErrors()
        => [.. Driver.Manage().Logs.GetLog(LogType.Browser).Where(entry => entry.Level >= LogLevel.Severe).Select(entry => entry.Message)];

    /// <summary>Every URL the page has loaded or fetched since it was opened (the document, its files, its API calls).</summary>
    public IReadOnlyList<string> LoadedUrls()
    {
        var urls = Driver.ExecuteScript("return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)];") as IEnumerable<object>
            ?? throw new InvalidOperationException("The page did not list its resources.");
        return [.. urls.Select(url => url.ToString()!)];
    }

    private static string FindScreenshotDirectory()
    {
        var configured = Environment.GetEnvironmentVariable("ONCELY_CONSOLE_SCREENSHOTS");
        if (!string.IsNullOrEmpty(configured))
        {
            return configured;
        }

        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Oncely.slnx")))
            {
                return Path.Combine(directory.FullName, ".artifacts", "test-results", "operator-console");
            }
        }

        return Path.Combine(AppContext.BaseDirectory, "operator-console-screenshots");
    }
}

[CollectionDefinition(Name)]
public sealed class ConsoleCollection : ICollectionFixture<ConsoleBrowser>
{
    public const string Name = "operator console in Chromium";
}
